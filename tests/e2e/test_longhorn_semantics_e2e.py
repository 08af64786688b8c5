"""Issue 12 end to end: the Longhorn driver's semantics against the sandbox (real apiserver,
Longhorn emulator): detached volumes, Unknown backups, the snapshot limit, restored sizes,
failures Longhorn deleted."""

from datetime import datetime, timedelta, timezone

import pytest

from backups.clients import longhorn as longhorn_client
from backups.services import inventory_cache
from sandbox import faults, seed
from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
GI = 2**30


@pytest.fixture(autouse=True)
def _forget_the_failure_ledgers_start():
    """The database is emptied after each test, but not the cache table that marks that the
    inventory refresh has run: leave it as an earlier test found it."""
    from django.core.cache import cache

    from backups.drivers import failure_memory as failures

    yield
    cache.delete(failures.STARTED_KEY)


def _backups(client, namespace, pvc):
    response = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert response.status_code == 200, response.content
    return response.json()["backups"]


def _row(client, namespace, pvc):
    body = client.get(f"/v1/inventory?namespace={namespace}").json()
    return next(p for ns in body["namespaces"] for p in ns["pvcs"] if p["pvc"] == pvc)


def _backup(client, namespace, pvc):
    """POST /v1/backup, retrying only the same-second 409 (snapshot names have one-second resolution)."""
    def attempt():
        response = post(client, "/v1/backup", {"namespace": namespace, "pvc": pvc})
        detail = response.json().get("detail", "") if response.status_code == 409 else ""
        if "same second" in detail or "retry in a second" in detail:
            return None
        return response
    return wait_for(attempt, timeout=5, what="a backup request outside the previous one's second")


def _state_of(client, namespace, pvc, snapshot):
    return next((b["state"] for b in _backups(client, namespace, pvc) if b["snapshot"] == snapshot), None)


def test_a_detached_volume_is_backed_up(client, live):
    volume = seed.make_pvc(live, "e2e-lh12", "detached", files={"a.txt": "cold\n"})
    faults.set_attached(live, volume, False)
    wait_for(lambda: longhorn_client.get_volume(volume).state == "detached", what="the volume to detach")
    faults.reset_calls(live)
    response = _backup(client, "e2e-lh12", "detached")
    assert response.status_code == 200, response.content
    snapshot = response.json()["backup"]
    assert faults.calls(live).get("snapshotCRGet", 0) >= 2  # Soteria waited for the attachment
    wait_for(lambda: _state_of(client, "e2e-lh12", "detached", snapshot) == "Completed", what="the backup")


def test_an_unknown_backup_does_not_block_the_next_one_and_shows_as_a_failure(client, live):
    seed.make_pvc(live, "e2e-lh12", "unknown")
    faults.set_op_seconds(live, 60)
    first = _backup(client, "e2e-lh12", "unknown")
    assert first.status_code == 200, first.content
    snapshot = first.json()["backup"]
    name = wait_for(lambda: next((b["name"] for b in _backups(client, "e2e-lh12", "unknown")
                                  if b["snapshot"] == snapshot and b["name"]), None), what="the backup's name")
    faults.end_backup(live, name, "Unknown")
    wait_for(lambda: _state_of(client, "e2e-lh12", "unknown", snapshot) == "Unknown", what="state Unknown")
    wait_for(lambda: _row(client, "e2e-lh12", "unknown")["health_reason"] == "last backup failed",
             what="the inventory to show the failure")
    faults.set_op_seconds(live, live.longhorn_op_seconds)
    second = _backup(client, "e2e-lh12", "unknown")
    assert second.status_code == 200, second.content


def test_ten_backups_under_a_snapshot_limit_of_five_all_succeed_leaving_one_soteria_snapshot(client, live):
    volume = seed.make_pvc(live, "e2e-lh12", "limited", files={"a.txt": "x\n"})
    faults.set_snapshot_max_count(live, 5)
    try:
        for _ in range(10):
            response = _backup(client, "e2e-lh12", "limited")
            assert response.status_code == 200, response.content
            snapshot = response.json()["backup"]
            wait_for(lambda snapshot=snapshot: _state_of(client, "e2e-lh12", "limited", snapshot) == "Completed",
                     what=f"backup of {snapshot}")
    finally:
        faults.set_snapshot_max_count(live, 250)
    completed = [b for b in _backups(client, "e2e-lh12", "limited") if b["state"] == "Completed"]
    assert len(completed) == 10
    own = [s.name for s in longhorn_client.list_snapshots(volume) if s.name.startswith("soteria-backup-")]
    assert len(own) <= 1, own


def test_a_restore_of_a_backup_taken_before_the_source_grew_gives_a_pv_of_the_volumes_size(client, live):
    seed.make_pvc(live, "e2e-lh12", "grown", size="2Gi", files={"a.txt": "grown\n"},
                  backups=[{"state": "Completed", "volumeSize": str(GI), "files": {"a.txt": "small\n"}}])
    response = post(client, "/v1/restores", {"namespace": "e2e-lh12", "pvc": "grown", "target_pvc": "grown-copy"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["backup_size"] == "1Gi" and body["source_size"] == "2Gi"
    pv = kube(live).read_persistent_volume(body["pv"])
    volume = wait_for(lambda: longhorn_client.get_volume(body["volume"]), what="the restored volume")
    # Longhorn restored 1Gi (the backup's volumeSize) and Soteria expanded it to the source's 2Gi.
    assert pv.spec.capacity["storage"] == body["size"] == "2Gi" and body["size_note"] == ""
    assert int(volume.size) == 2 * GI
    claim = kube(live).read_namespaced_persistent_volume_claim("grown-copy", "e2e-lh12")
    assert claim.spec.resources.requests["storage"] == "2Gi"


def test_a_restore_longhorn_cannot_expand_says_the_claim_is_smaller(client, live):
    seed.make_pvc(live, "e2e-lh12", "grown2", size="2Gi",
                  backups=[{"state": "Completed", "volumeSize": str(GI)}])
    faults.inject(live, "expand", message="unable to expand volume: cannot expand volume before replica "
                                          "scheduling success")
    body = post(client, "/v1/restores", {"namespace": "e2e-lh12", "pvc": "grown2",
                                         "target_pvc": "grown2-copy"}).json()
    pv = kube(live).read_persistent_volume(body["pv"])
    volume = wait_for(lambda: longhorn_client.get_volume(body["volume"]), what="the restored volume")
    assert pv.spec.capacity["storage"] == body["size"] == "1Gi" and int(volume.size) == GI
    assert "smaller" in body["size_note"] and "2Gi" in body["size_note"]


def test_a_failed_backup_stays_visible_after_longhorn_deleted_it(client, live):
    two_hours_ago = (datetime.now(timezone.utc) - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    volume = seed.make_pvc(live, "e2e-lh12", "ttl", backups=[{"state": "Completed", "created": two_hours_ago}])
    inventory_cache.refresh()  # the worker's refresh has run before
    faults.inject(live, "snapshotBackup", mode="fail_async", message="backup target unreachable", target=volume)
    response = _backup(client, "e2e-lh12", "ttl")
    assert response.status_code == 200, response.content
    snapshot = response.json()["backup"]
    wait_for(lambda: _state_of(client, "e2e-lh12", "ttl", snapshot) == "Error", what="the backup to fail")
    wait_for(lambda: _row(client, "e2e-lh12", "ttl")["health_reason"] == "last backup failed", what="failure")
    inventory_cache.refresh()  # remembers it
    # Longhorn deletes it, as its failed-backup-ttl clean-up does (DeleteBackup). The emulator's
    # TTL switch is global and would also delete the demo seed's failed backups other tests use.
    [failed] = [b for b in _backups(client, "e2e-lh12", "ttl") if b["snapshot"] == snapshot]
    [backup_volume] = [bv.name for bv in longhorn_client.list_backup_volumes() if bv.volume_name == volume]
    longhorn_client.delete_backup(backup_volume, failed["name"])
    wait_for(lambda: _state_of(client, "e2e-lh12", "ttl", snapshot) is None, what="Longhorn to delete the backup")
    inventory_cache.refresh()
    row = _row(client, "e2e-lh12", "ttl")
    assert row["health_reason"] == "last backup failed" and row["backup_count"] == 1
