"""The console's inventory: filters and search as GET parameters, counts per namespace and
overall, "overdue" where a policy's next run is past, and pages that stay small at 10,000 PVCs."""

import re
import time

import pytest
import time_machine
from django.core.cache import cache

from backups.console.inventory import PAGE_SIZE
from policies import services as policy_services
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(cluster):
    cache.clear()
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("ai", "model-store", backups=[("Completed", 30, None)])
    cluster.add_pvc("ai", "notebooks")
    cluster.add_pvc("media", "photos", backups=[("Completed", 30, None)])
    cluster.add_pvc("media", "photo-thumbs", backups=[("Completed", 1, None)])
    with time_machine.travel(NOW, tick=False):
        policy_services.save_policy("media", "", 6, True, None, [], "test")  # photos: last backup 30 h ago
        policy_services.refresh_inventory()
    return cluster


def _get(client, query=""):
    with time_machine.travel(NOW, tick=False):
        response = client.get(f"/{query}")
    assert response.status_code == 200
    return response.content.decode()


def _rows(page) -> list[str]:
    return re.findall(r'<tr data-pvc="([^"]+)"', page)


def test_filter_by_health_reason(client, world):
    page = _get(client, "?reason=stale")
    assert _rows(page) == ["model-store", "photos"]
    assert '<option value="stale" selected>' in page  # the filter shows what it filters


def test_search_by_pvc_name_within_a_namespace(client, world):
    assert _rows(_get(client, "?q=photo")) == ["photo-thumbs", "photos"]
    assert _rows(_get(client, "?q=photo&namespace=ai")) == []
    assert _rows(_get(client, "?q=NOTE")) == ["notebooks"]  # names are lower case: so is the search


def test_overdue_marks_pvcs_whose_policy_run_is_past(client, world):
    page = _get(client)
    overdue = re.findall(r'<tr data-pvc="([^"]+)" data-overdue>', page)
    assert overdue == ["photos"]  # every 6 h, last backup 30 h ago; photo-thumbs is 1 h old
    assert _rows(_get(client, "?overdue=on")) == ["photos"]


def test_counts_per_namespace_and_overall(client, world):
    page = _get(client, "?reason=stale")
    assert re.search(r'data-total="pvcs">5<', page) and re.search(r'data-total="overdue">1<', page)
    assert re.search(r'data-total="unhealthy">3<', page)  # two stale, one never backed up
    ai = re.search(r'<tr data-ns-count="ai">(.*?)</tr>', page, re.S).group(1)
    assert re.findall(r'<td class="num">(\d+)</td>', ai) == ["3", "2", "0", "1"]  # PVCs, attention, overdue, matching
    assert "2 PVCs match" in page


def test_an_invalid_filter_is_named_and_shows_everything(client, world):
    page = _get(client, "?reason=nonsense")
    assert "reason: Select a valid choice" in page
    assert len(_rows(page)) == 5


def test_links_keep_the_filter(client, world):
    page = _get(client, "?reason=stale&q=photo")
    assert 'href="?reason=stale&amp;q=photo&amp;refresh=1">Refresh now' in page


def test_ten_thousand_pvcs_come_in_pages_under_one_megabyte(client, cluster):
    cache.clear()
    for n in range(10_000):
        cluster.add_pvc(f"team-{n % 40:02d}", f"data-{n:05d}-volume-claim", backups=[("Completed", n % 50, None)])
    with time_machine.travel(NOW, tick=False):
        policy_services.save_policy("team-07", "", 24, True, None, [], "test")
        policy_services.refresh_inventory()
    started = time.monotonic()
    first = _get(client)
    took = time.monotonic() - started
    assert len(first.encode()) < 1_000_000, f"{len(first.encode())} bytes"
    assert len(_rows(first)) == PAGE_SIZE
    assert re.search(r'data-total="pvcs">10000<', first) and "page 1 of 50" in first
    assert first.count("<tr data-ns-count=") == 40
    last = _get(client, "?page=50")
    assert len(_rows(last)) == PAGE_SIZE and 'rel="prev"' in last and 'rel="next"' not in last
    overdue = _get(client, "?overdue=on&namespace=team-07")
    # team-07's 250 PVCs were backed up 7, 17, 27, 37 and 47 h ago, 50 each: three ages are past 24 h.
    assert len(_rows(overdue)) == 150
    assert took < 5, f"the first page took {took:.1f} s"
