"""A failed backup stays visible after Longhorn deletes it (failed-backup-ttl), until a newer
backup succeeds; the inventory refresh remembers it, requests only read."""

from dataclasses import replace
from datetime import timedelta

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext

from backups import types as t
from backups.models import BackupFailure
from backups.services import inventory_cache
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db
VOLUME = "pvc-ai-llm-cache"


def _reason(client):
    body = client.get("/v1/inventory").json()
    return next(r for ns in body["namespaces"] for r in ns["pvcs"] if r["pvc"] == "llm-cache")["health_reason"]


def _drop_backups(cluster, state):
    """Longhorn deleting its failed backups after failed-backup-ttl."""
    volume = cluster.volumes[VOLUME]
    cluster.volumes[VOLUME] = replace(volume, backups=tuple(b for b in volume.backups if b.state != state))


def _fail_now(cluster, name):
    """A backup that failed before the engine started: no snapshot name."""
    from backups.clients.longhorn import BackupStatus

    volume = cluster.volumes[VOLUME]
    failed = BackupStatus(name=name, snapshot="", state="Error", progress=0, url="", error="engine refused", size="")
    cluster.volumes[VOLUME] = replace(volume, backups=volume.backups + (failed,))


def _success_now(cluster, when):
    volume = cluster.volumes[VOLUME]
    cluster.volumes[VOLUME] = replace(volume, last_backup_at=when)


def test_a_failure_without_a_snapshot_name_after_a_success_is_dated_when_first_seen_and_kept(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None)])
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()  # the ledger has looked once
        _fail_now(cluster, "backup-early-failure")
        assert _reason(client) == t.LAST_BACKUP_FAILED  # dated now, newer than the success
        inventory_cache.refresh()
    row = BackupFailure.objects.get(volume=VOLUME)
    assert row.backup == "backup-early-failure" and row.first_seen == NOW and row.error == "engine refused"
    with time_machine.travel(NOW + timedelta(days=2), tick=False):
        _drop_backups(cluster, "Error")  # Longhorn's failed-backup-ttl
        inventory_cache.refresh()
        assert _reason(client) == t.LAST_BACKUP_FAILED
        assert BackupFailure.objects.count() == 1


def test_a_newer_success_clears_a_remembered_failure(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None)])
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
        _fail_now(cluster, "backup-early-failure")
        inventory_cache.refresh()
    with time_machine.travel(NOW + timedelta(hours=3), tick=False):
        _drop_backups(cluster, "Error")
        _success_now(cluster, NOW + timedelta(hours=2))
        assert _reason(client) == t.FRESH
        inventory_cache.refresh()
    assert not BackupFailure.objects.exists()


def test_requests_read_the_memory_but_never_write_it(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None), ("Error", None, None)])
    with time_machine.travel(NOW, tick=False):
        client.get("/v1/inventory")
    assert not BackupFailure.objects.exists()


def test_failures_already_there_at_the_first_refresh_stay_undated_and_do_not_hide_a_success(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 3, None), ("Error", None, None)])
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
        assert _reason(client) == t.FRESH
    assert BackupFailure.objects.get().first_seen is None


def test_the_refresh_reads_once_and_writes_only_what_changed(cluster):
    for index in range(200):
        cluster.add_pvc("bulk", f"p{index}", backups=[("Completed", 3, None), ("Error", 1, f"snap-{index}")])
    with time_machine.travel(NOW, tick=False):
        inventory_cache.refresh()
        assert BackupFailure.objects.count() == 200
        with CaptureQueriesContext(connection) as queries:
            inventory_cache.refresh()
    touching = [q["sql"] for q in queries.captured_queries if "backups_backupfailure" in q["sql"]]
    assert len(touching) == 1 and touching[0].lstrip().upper().startswith("SELECT")
