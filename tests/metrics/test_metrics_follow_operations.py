"""A backup or restore Soteria starts reaches the cached rows (and /metrics) at once, without
rewriting every row and without an upstream call at scrape; the next refresh takes over."""

import pytest
import time_machine

from backups.models import CachedInventory
from backups.services import inventory_cache
from policies.services import refresh_inventory
from soteria_site.core.errors import UpstreamUnavailable
from tests.metrics.test_freshness_metrics import pvc, scrape
from tests.support.fake_cluster import NOW
from tests.support.http import post

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]
RUNNING = ("soteria_backups_in_progress", (("state", "running"),))


def _refresh():
    with time_machine.travel(NOW, tick=False):
        assert refresh_inventory(now=NOW) is not None


def _row(namespace, name):
    return next((r for r in inventory_cache.latest().rows if (r["namespace"], r["pvc"]) == (namespace, name)), None)


@pytest.fixture
def refreshed(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("ai", "other", backups=[("Completed", 3, None)])
    cluster.namespaces.add("ai-restore")
    _refresh()
    return cluster


def test_a_started_backup_shows_in_progress_before_the_next_refresh(client, refreshed, frozen):
    assert scrape(client)[RUNNING] == 0
    stored = CachedInventory.objects.get(id=1).rows

    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 200, response.content
    row = _row("ai", "llm-cache")
    assert row["in_progress"] == 1 and row["reason"] == "backup in progress"
    assert row["count"] == 1 and row["healthy"] is True  # the last success is still the last success
    assert _row("ai", "other")["reason"] == "fresh"
    assert CachedInventory.objects.get(id=1).rows == stored  # one small change, not every row rewritten

    refreshed.calls.clear()
    samples = scrape(client)
    assert samples[RUNNING] == 1
    assert samples[("pvc_backup_health", pvc("ai", "llm-cache", "pvc-ai-llm-cache"))] == 1
    assert sum(refreshed.calls.values()) == 0


def test_the_next_refresh_shows_the_backup_as_longhorn_reports_it(client, refreshed, frozen):
    post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    [snapshot] = [b.snapshot for b in refreshed.volumes["pvc-ai-llm-cache"].backups if b.state == "InProgress"]
    refreshed.set_backup_state("pvc-ai-llm-cache", snapshot, "Completed")
    _refresh()
    row = _row("ai", "llm-cache")
    assert row["in_progress"] == 0 and row["count"] == 2 and row["reason"] == "fresh"
    assert scrape(client)[RUNNING] == 0


def test_a_dry_run_or_refused_backup_changes_no_row(client, refreshed, frozen):
    post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True})
    refreshed.fail["create_snapshot"] = UpstreamUnavailable("longhorn", "down")
    assert post(client, "/v1/backup", {"namespace": "ai", "pvc": "other"}).status_code == 503
    assert _row("ai", "llm-cache")["in_progress"] == 0 and _row("ai", "other")["in_progress"] == 0


def test_a_backup_started_while_the_database_refuses_the_change_still_succeeds(client, refreshed, frozen,
                                                                              monkeypatch):
    from django.db import OperationalError

    from backups.models import CachedRowChange

    def locked(**fields):
        raise OperationalError("database is locked")

    monkeypatch.setattr(CachedRowChange.objects, "create", locked)
    assert post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"}).status_code == 200
    assert _row("ai", "llm-cache")["in_progress"] == 0  # the next refresh shows it


def test_a_newer_failure_still_names_the_row_after_a_backup_starts(client, cluster, frozen):
    # Failed two hours ago: dated by Soteria's snapshot name.
    cluster.add_pvc("ai", "flaky", backups=[("Completed", 30, None),
                                            ("Error", 2, "soteria-backup-ai-flaky-20260412-133000")])
    _refresh()
    assert _row("ai", "flaky")["reason"] == "last backup failed"
    post(client, "/v1/backup", {"namespace": "ai", "pvc": "flaky"})
    row = _row("ai", "flaky")
    assert row["in_progress"] == 1 and row["reason"] == "last backup failed"


@pytest.mark.django_db(transaction=True)  # its PVCs are backed up from threads
def test_every_pvc_of_a_namespace_backup_shows_in_progress(client, refreshed, frozen):
    response = post(client, "/v1/backup/namespace", {"namespace": "ai"})
    assert response.status_code == 200, response.content
    assert _row("ai", "llm-cache")["in_progress"] == 1 and _row("ai", "other")["in_progress"] == 1
    assert scrape(client)[RUNNING] == 2


def test_a_started_restore_gives_the_new_pvc_its_row_at_once(client, refreshed, frozen):
    response = post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_namespace": "ai-restore",
                                             "target_pvc": "llm-cache-copy"})
    assert response.status_code == 200, response.content
    volume = response.json()["volume"]
    row = _row("ai-restore", "llm-cache-copy")
    assert row["volume"] == volume and row["driver"] == "longhorn"
    assert row["count"] == 0 and row["healthy"] is False and row["reason"] == "never backed up"

    refreshed.calls.clear()
    samples = scrape(client)
    copy = pvc("ai-restore", "llm-cache-copy", volume)
    assert samples[("pvc_backup_health", copy)] == 0 and samples[("pvc_backup_count", copy)] == 0
    assert ("pvc_backup_age_hours", copy) not in samples
    assert sum(refreshed.calls.values()) == 0


def test_a_change_newer_than_the_refresh_build_survives_it(refreshed, frozen, monkeypatch):
    from backups.services import inventory

    build = inventory.build

    def build_while_a_backup_starts(**kwargs):
        built = build(**kwargs)  # read before the backup started: it is not in there
        inventory_cache.record_backup("ai", "other", "soteria-backup-late")
        return built

    monkeypatch.setattr(inventory, "build", build_while_a_backup_starts)
    _refresh()
    assert _row("ai", "other")["in_progress"] == 1
    monkeypatch.setattr(inventory, "build", build)
    _refresh()  # this one saw everything recorded before it began
    assert _row("ai", "other")["in_progress"] == 0
