"""The console's restore drills: the inventory's last verified column, the PVC page's drill
history and its Run restore drill form (the drill service stubbed where it would queue work)."""

import re
from datetime import timedelta
from html import unescape
from types import SimpleNamespace

import pytest
import time_machine

from backups.services import drills
from soteria_site.core.errors import Conflict
from soteria_site.web.models import AuditEntry
from tests.support.cast import CAST
from tests.support.drills import record_drill
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]
LONG_REASON = "3 differences from the backup's manifest: " + "db/base/16384/2619 size 8192 != 16384; " * 4


def _text(fragment: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", fragment)).strip()


def _row(html: str, pvc: str) -> str:
    return re.search(rf'<tr data-pvc="{re.escape(pvc)}">(.*?)</tr>', html, re.S).group(1)


def _verified_cell(html: str, pvc: str) -> str:
    return re.search(r"<td[^>]*data-verified>(.*?)</td>", _row(html, pvc), re.S).group(1)


@pytest.fixture
def drilled(cluster):
    for name in ("proven", "broken", "fresh"):
        cluster.add_pvc("ai", name, backups=[("Completed", 2, None)])
    record_drill("ai", "proven", "passed", NOW - timedelta(days=3, hours=1), minutes=60)
    record_drill("ai", "broken", "passed", NOW - timedelta(days=10, minutes=10))
    record_drill("ai", "broken", "failed", NOW - timedelta(hours=5), minutes=4, reason=LONG_REASON,
                 differences=("db/base/16384/2619 size 8192 != 16384", "db/global/pg_control missing"),
                 backup="backup-pvc-ai-broken-0")
    record_drill("ai", "broken", "running", NOW - timedelta(minutes=2), drill_id="now-running")
    return cluster


def _inventory(client, **headers):
    with time_machine.travel(NOW, tick=False):
        return client.get("/", **headers)


# --- the inventory --------------------------------------------------------------------------
def test_the_inventory_shows_when_each_pvc_was_last_verified_and_how_long_ago(client, drilled):
    html = _inventory(client).content.decode()
    assert _text(_verified_cell(html, "proven")) == "2026-04-09 15:30 3 d ago"
    assert _text(_verified_cell(html, "fresh")) == "never"


def test_pvcs_no_drill_could_restore_show_no_verification(client, drilled):
    drilled.add_pvc("ai", "pending", bound=False)
    drilled.add_pvc("ai", "local", storage_class="local-path", csi_driver=None)
    html = _inventory(client).content.decode()
    assert _text(_verified_cell(html, "pending")) == "—" and _text(_verified_cell(html, "local")) == "—"


def test_a_failed_newest_drill_shows_its_reason_short_with_the_full_text_in_a_title(client, drilled):
    cell = _verified_cell(_inventory(client).content.decode(), "broken")
    assert _text(cell).startswith("2026-04-02 15:23 10 d ago drill failed 3 differences from the backup")
    shown = unescape(re.search(r'<span class="muted">([^<]*)</span></div>', cell).group(1))
    assert len(shown) <= 60 and shown.endswith("…")
    assert f'title="{LONG_REASON.replace(chr(39), "&#x27;")}"' in cell


def test_a_passed_newest_drill_shows_no_problem(client, drilled):
    assert "drill-problem" not in _verified_cell(_inventory(client).content.decode(), "proven")


# --- the PVC page ---------------------------------------------------------------------------
def test_the_pvc_page_lists_its_drills_newest_first_with_duration_reason_and_differences(client, drilled):
    html = client.get("/pvc/ai/broken/").content.decode()
    rows = re.findall(r'<tr data-drill="([^"]+)">(.*?)</tr>', html, re.S)
    assert [_text(r).split()[0] for _, r in rows] == ["running", "failed", "passed"]
    failed = _text(rows[1][1])
    assert failed.startswith("failed backup-pvc-ai-broken-0 2026-04-12 10:30:00 4 min 3 differences")
    assert "2 differences db/base/16384/2619 size 8192 != 16384 db/global/pg_control missing" in failed
    assert _text(rows[0][1]).split()[4] == "—"  # still running: no duration yet


def test_a_pvc_never_drilled_says_so(client, drilled):
    assert "No restore drill yet." in client.get("/pvc/ai/fresh/").content.decode()


def test_the_pvc_page_still_shows_backups_when_the_drill_records_cannot_be_read(client, drilled):
    from soteria_site.core.errors import UpstreamUnavailable

    drilled.fail["find_config_map"] = UpstreamUnavailable("kubernetes", "etcd is down")
    response = client.get("/pvc/ai/broken/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Could not read the drill history." in html and "etcd is down" in html
    assert 'data-backup="backup-pvc-ai-broken-0"' in html


# --- running a drill ------------------------------------------------------------------------
@pytest.fixture
def start(monkeypatch):
    """drills.start without queueing: it answers a plan, or raises what `refuse` holds."""
    fake = SimpleNamespace(calls=[], refuse=None)

    def start(namespace, pvc, requested_by, *, dry_run=False):
        fake.calls.append((namespace, pvc, requested_by, dry_run))
        if fake.refuse:
            raise fake.refuse
        return SimpleNamespace(id="20260412-153000-abc123", backup=SimpleNamespace(name="backup-pvc-ai-fresh-0"),
                               manifest_key="snap-0", has_manifest=True, drill_namespace="soteria",
                               scratch_pvc="soteria-drill-fresh-abc123", dry_run=dry_run)

    monkeypatch.setattr(drills, "start", start)
    return fake


def _messages(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def test_run_restore_drill_starts_one_and_says_so(client, drilled, start):
    response = client.post("/pvc/ai/fresh/drill", {}, follow=True)
    assert response.redirect_chain[-1][0] == "/pvc/ai/fresh/"
    [(namespace, pvc, _who, dry_run)] = start.calls
    assert (namespace, pvc, dry_run) == ("ai", "fresh", False)
    [message] = _messages(response)
    assert message.startswith("Restore drill 20260412-153000-abc123 of backup backup-pvc-ai-fresh-0 started")
    entry = AuditEntry.objects.get()
    assert (entry.action, entry.target, entry.status) == ("restore-drill.create", "ai/fresh", 202)


def test_a_dry_run_only_plans_and_describes_the_plan(client, drilled, start):
    response = client.post("/pvc/ai/fresh/drill", {"dry_run": "on"}, follow=True)
    assert start.calls[0][3] is True
    [message] = _messages(response)
    assert message.startswith("Dry run: would restore backup backup-pvc-ai-fresh-0 into the scratch claim "
                              "soteria/soteria-drill-fresh-abc123, compare it with the manifest snap-0")


def test_a_refused_drill_shows_the_services_reason(client, drilled, start):
    start.refuse = Conflict("a restore drill of PVC ai/fresh is already running", code="drill_in_progress")
    response = client.post("/pvc/ai/fresh/drill", {}, follow=True)
    assert _messages(response) == ["Restore drill refused: a restore drill of PVC ai/fresh is already running"]
    assert AuditEntry.objects.get().result == "drill_in_progress"


def test_the_drill_form_needs_a_post(client, drilled, start):
    assert client.get("/pvc/ai/fresh/drill").status_code == 405
    assert start.calls == []


def test_the_drill_form_is_protected_against_cross_site_posts(drilled, start):
    from django.test import Client

    response = Client(enforce_csrf_checks=True).post("/pvc/ai/fresh/drill", {})
    assert response.status_code == 403 and start.calls == []


@pytest.mark.parametrize("who,namespace,allowed", [
    ("admin", "ai", True), ("scoped", "ai", True), ("scoped", "media", False), ("viewer", "ai", False),
    ("outsider", "ai", False)])
def test_running_a_drill_needs_the_restore_permission_for_the_namespace(client, drilled, start, auth_on, who,
                                                                        namespace, allowed):
    drilled.add_pvc("media", "fresh", backups=[("Completed", 2, None)])
    response = client.post(f"/pvc/{namespace}/fresh/drill", {}, **CAST[who].headers)
    assert (response.status_code == 302) is allowed
    assert bool(start.calls) is allowed
    if allowed:
        assert start.calls[0][2] == CAST[who].name


def test_the_form_is_shown_only_to_who_may_restore(client, drilled, auth_on):
    def has_form(who):
        return "Run restore drill" in client.get("/pvc/ai/fresh/", **CAST[who].headers).content.decode()

    assert has_form("admin") and has_form("scoped")
    assert not has_form("viewer")
