"""The console's inventory page shows the stored inventory (the worker's refresh) with its
age without building anything; "Refresh now", or a page opened before anything is stored,
builds it live."""

from datetime import timedelta

import pytest
import time_machine
from django.core.cache import cache

from backups.services import inventory_cache
from tests.support.fake_cluster import INVENTORY_LISTS, NOW

pytestmark = pytest.mark.django_db



@pytest.fixture
def world(cluster):
    cache.clear()
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 30, None)])
    return cluster


def _built(cluster) -> bool:
    return any(cluster.calls[name] for name in INVENTORY_LISTS)


def test_the_page_shows_the_stored_inventory_with_its_age_and_builds_nothing(client, world):
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
    world.calls.clear()
    with time_machine.travel(NOW + timedelta(minutes=12), tick=False):
        page = client.get("/?namespace=ai").content.decode()
    assert not _built(world)
    assert 'data-inventory-source="stored"' in page
    assert "12 min old" in page
    assert 'data-pvc="llm-cache"' in page and 'data-pvc="photos"' not in page
    assert "fresh" in page
    assert 'href="?namespace=ai&amp;refresh=1">Refresh now' in page


def test_refresh_now_builds_the_inventory_live(client, world):
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
    world.calls.clear()
    page = client.get("/?refresh=1").content.decode()
    assert _built(world)
    assert 'data-inventory-source="live"' in page
    assert 'data-pvc="llm-cache"' in page and 'data-pvc="photos"' in page


def test_before_anything_is_stored_the_page_builds_live(client, world):
    page = client.get("/").content.decode()
    assert _built(world)
    assert 'data-inventory-source="live"' in page
