"""Issue 4 end to end: backups through Longhorn (emulated), inventory on the real apiserver."""

import sys
import time
from pathlib import Path

import pytest

from backups.clients import longhorn as longhorn_client
from sandbox import faults, procs, seed
from sandbox.config import SandboxConfig
from soteria_site.core import kubernetes as kubernetes_client
from soteria_site.core.metrics import UPSTREAM_REQUESTS
from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def _backups(client, namespace, pvc):
    response = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert response.status_code == 200, response.content
    return response.json()


def _row(client, namespace, pvc):
    body = client.get(f"/v1/inventory?namespace={namespace}").json()
    return next(p for ns in body["namespaces"] for p in ns["pvcs"] if p["pvc"] == pvc)


def test_backup_reaches_completed_with_labels_and_mode_and_shows_everywhere(client, live, settings):
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    seed.make_pvc(live, "e2e-bk", "data", files={"a.txt": "hello\n"})
    faults.wait_mirrored(live)  # the inventory reads Longhorn's CRs, which the emulator writes
    assert _row(client, "e2e-bk", "data")["health_reason"] == "never backed up"
    response = post(client, "/v1/backup", {"namespace": "e2e-bk", "pvc": "data", "tags": ["service=llm", "urgent"]})
    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"driver", "volume", "backup", "namespace", "requested_by", "dry_run"}
    assert body["backup"].startswith("soteria-backup-e2e-bk-data-")
    done = wait_for(lambda: [b for b in _backups(client, "e2e-bk", "data")["backups"] if b["state"] == "Completed"],
                    what="the backup to complete")
    [backup] = done
    assert backup["snapshot"] == body["backup"] and backup["backup_mode"] == "full"
    assert backup["labels"]["service"] == "llm" and backup["labels"]["urgent"] == "true"
    assert backup["url"].startswith("s3://") and backup["created"].endswith("Z")
    row = wait_for(lambda: (r := _row(client, "e2e-bk", "data"))["backup_count"] == 1 and r, what="inventory")
    assert row["healthy"] is True and row["health_reason"] == "fresh"
    events = kube(live).list_namespaced_event("e2e-bk").items
    assert any(e.reason == "BackupStarted" and body["backup"] in e.message for e in events)


def test_second_backup_while_one_runs_is_409_naming_it(client, live):
    seed.make_pvc(live, "e2e-bk", "busy")
    faults.set_op_seconds(live, 30)
    first = post(client, "/v1/backup", {"namespace": "e2e-bk", "pvc": "busy"})
    assert first.status_code == 200
    running = wait_for(lambda: [b for b in _backups(client, "e2e-bk", "busy")["backups"]], what="backup listed")
    second = post(client, "/v1/backup", {"namespace": "e2e-bk", "pvc": "busy"})
    assert second.status_code == 409 and second.json()["error"] == "backup_in_progress"
    assert second.json()["running"] in (running[0]["name"], first.json()["backup"])
    faults.wait_mirrored(live)
    assert _row(client, "e2e-bk", "busy")["health_reason"] == "backup in progress"


def test_dry_runs_make_no_mutating_call(client, live):
    seed.make_pvc(live, "e2e-bk", "dry")
    faults.reset_calls(live)
    single = post(client, "/v1/backup", {"namespace": "e2e-bk", "pvc": "dry", "dry_run": True})
    batch = post(client, "/v1/backup/namespace", {"namespace": "e2e-bk", "dry_run": True})
    assert single.status_code == 200 and batch.status_code == 200
    assert [c["call"] for c in single.json()["plan"]] == ["snapshotCRCreate", "snapshotBackup",
                                                          "kubernetes.createJob"]
    calls = faults.calls(live)
    mutating = {k: v for k, v in calls.items() if k in ("snapshotCRCreate", "snapshotCreate", "snapshotBackup",
                                                        "volume.create", "volume.delete", "backupDelete")}
    assert mutating == {}, calls


def test_namespace_backup_runs_every_bound_longhorn_pvc(client, live):
    for name in ("one", "two", "three"):
        seed.make_pvc(live, "e2e-batch", name)
    seed.make_pvc(live, "e2e-batch", "waiting", bound=False)
    body = post(client, "/v1/backup/namespace", {"namespace": "e2e-batch", "tags": ["reason=upgrade"]}).json()
    assert body["totals"] == {"total": 4, "success": 3, "failed": 0, "skipped": 1, "planned": 0}
    for name in ("one", "two", "three"):
        wait_for(lambda name=name: any(b["state"] == "Completed" for b in _backups(client, "e2e-batch", name)["backups"]),
                 what=f"backup of {name}")


def test_bad_names_and_bodies_are_refused_before_any_call(client, live):
    faults.reset_calls(live)
    assert post(client, "/v1/backup", {"namespace": "e2e_bk", "pvc": "x"}).status_code == 400
    assert post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "tags": ["k=v w"]}).status_code == 400
    assert client.post("/v1/backup", "not json", content_type="application/json").status_code == 400
    assert faults.calls(live) == {}


def test_longhorn_failure_maps_to_502_with_its_message(client, live):
    seed.make_pvc(live, "e2e-bk", "failing")
    faults.inject(live, "snapshotBackup", message="backup target unavailable")
    response = post(client, "/v1/backup", {"namespace": "e2e-bk", "pvc": "failing"})
    assert response.status_code == 502 and "backup target unavailable" in response.json()["detail"]


def test_every_health_reason_from_a_real_situation(client, live):
    now = time.time()
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 10 * 3600))
    stuck_name = "soteria-backup-e2e-health-stuck-" + time.strftime("%Y%m%d-%H%M%S", time.gmtime(now - 10 * 3600))
    seed.make_pvc(live, "e2e-health", "stuck", backups=[
        {"state": "Completed", "created": iso}, {"state": "InProgress", "snapshotName": stuck_name}])
    seed.make_pvc(live, "e2e-health", "fresh", backups=[{"state": "Completed"}])
    # A PV naming a Longhorn volume that Longhorn does not have.
    pv, claim = seed.pv_and_pvc(live, "e2e-health", "ghost", "1Gi", "longhorn")
    core = kube(live)
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim("e2e-health", claim)
    seed.wait_bound(live, [("e2e-health", "ghost")])
    faults.wait_mirrored(live)
    reasons = {p["pvc"]: p["health_reason"] for ns in client.get("/v1/inventory").json()["namespaces"]
               for p in ns["pvcs"] if ns["name"] in ("e2e-health", "ai", "media", "databases")}
    assert reasons["stuck"] == "backup stuck" and reasons["fresh"] == "fresh"
    assert reasons["ghost"] == "volume missing in Longhorn"
    # The demo seed provides the rest.
    assert reasons["model-store"] == "stale"
    assert reasons["analytics-warehouse"] == "not bound"
    assert reasons["transcode-cache"] == "unsupported driver"
    assert reasons["postgres-data"] == "last backup failed"


KUBERNETES_OPERATIONS = ("pvcs.list", "pvs.list", "storageclasses.list", "pvcs.get", "pvs.get",
                         "longhorn.volumes.list", "longhorn.backups.list", "longhorn.backupvolumes.list")


def _inventory_calls(client, live, monkeypatch) -> tuple[dict, int, int]:
    """(calls by system and operation, rows, pages read) of one inventory."""
    def kube_calls():
        return {op: UPSTREAM_REQUESTS.labels("kubernetes", op, "ok")._value.get() for op in KUBERNETES_OPERATIONS}

    pages = []
    call = kubernetes_client._call

    def counting(operation, *args, **kwargs):
        pages.append(operation)
        return call(operation, *args, **kwargs)

    monkeypatch.setattr(kubernetes_client, "_call", counting)
    before = kube_calls()
    faults.reset_calls(live)
    body = client.get("/v1/inventory").json()
    after = kube_calls()
    monkeypatch.setattr(kubernetes_client, "_call", call)
    counted = {f"kubernetes:{op}": after[op] - before[op] for op in after if after[op] != before[op]}
    counted.update({f"longhorn:{k}": v for k, v in faults.calls(live).items()})
    return counted, sum(len(ns["pvcs"]) for ns in body["namespaces"]), len(pages)


def test_inventory_costs_the_same_kubernetes_lists_at_10_and_200_more_pvcs_and_nothing_on_longhorn(
        client, live, monkeypatch):
    """Longhorn's side comes from its CRDs: three paginated lists whatever the size, read here in
    pages of 100 so that the larger inventory takes more pages but not more list operations."""
    monkeypatch.setattr(kubernetes_client, "PAGE_SIZE", 100)
    seed.scale(live, 1, 10, 3, prefix="e2e-cost-a", wait=True)
    faults.wait_mirrored(live)  # the emulator has written them into Longhorn's CRs
    small, small_count, small_pages = _inventory_calls(client, live, monkeypatch)
    seed.scale(live, 2, 95, 3, prefix="e2e-cost-b", wait=True)
    faults.wait_mirrored(live)
    large, large_count, large_pages = _inventory_calls(client, live, monkeypatch)
    body = client.get("/v1/inventory").json()
    seeded = [p for ns in body["namespaces"] if ns["name"].startswith("e2e-cost-") for p in ns["pvcs"]]
    assert len(seeded) == 200 and {p["backup_count"] for p in seeded} == {3}
    assert large_count >= small_count + 190
    assert small == large, (small, large)
    assert not [k for k in large if k.startswith("longhorn:")], large  # no call to the manager
    assert sum(large.values()) == 6  # PVCs, PVs, StorageClasses; Longhorn's volumes, backups, backup volumes
    assert large_pages >= small_pages + 6  # 570 more backups and 190 more volumes, in pages of 100


def test_longhorn_18_backup_volume_names_are_found_by_volume_name(client, live, settings, tmp_path):
    """A second emulator with Longhorn 1.8+ behaviour: backup volumes named <volume>-<hash>."""
    cfg18 = SandboxConfig(state_dir=tmp_path / "lh18", port_base=live.port_base + 20, longhorn_version="1.8",
                          longhorn_op_seconds=0.3)
    repo = Path(__file__).resolve().parents[2]
    procs.start(cfg18, "longhorn", [sys.executable, "-m", "sandbox.longhorn", "--host", "127.0.0.1", "--port",
                                    str(cfg18.port("longhorn")), "--state-dir", str(cfg18.longhorn_dir),
                                    "--kubeconfig", str(live.kubeconfig), "--version", "1.8", "--op-seconds", "0.3",
                                    "--namespace", "e2e-longhorn-18"],  # its CRs beside the session's
                cwd=repo)
    try:
        from sandbox import cluster
        wait_for(lambda: cluster.longhorn_ready(cfg18), what="the 1.8 emulator")
        volume = seed.volume_name("e2e-lh18", "data")
        pv, claim = seed.pv_and_pvc(live, "e2e-lh18", "data", "1Gi", "longhorn")
        seed.ensure_basics(live, ["e2e-lh18"])
        faults.longhorn_seed(cfg18, {"volumes": [{"name": volume, "size": "1Gi", "files": {"f": "x"},
                                                  "state": "attached"}]})
        core = kube(live)
        core.create_persistent_volume(pv)
        core.create_namespaced_persistent_volume_claim("e2e-lh18", claim)
        seed.wait_bound(live, [("e2e-lh18", "data")])
        settings.SOTERIA_LONGHORN_URL = cfg18.longhorn_url
        settings.SOTERIA_LONGHORN_NAMESPACE = "e2e-longhorn-18"
        longhorn_client.reset()
        assert post(client, "/v1/backup", {"namespace": "e2e-lh18", "pvc": "data"}).status_code == 200
        done = wait_for(lambda: [b for b in _backups(client, "e2e-lh18", "data")["backups"]
                                 if b["state"] == "Completed"], what="1.8 backup")
        assert len(done) == 1
        [bv] = [bv for bv in longhorn_client.list_backup_volumes() if bv.volume_name == volume]
        assert bv.name != volume and bv.name.startswith(volume + "-")
        faults.wait_mirrored(cfg18)  # the inventory reads the 1.8 emulator's CRs
        row = _row(client, "e2e-lh18", "data")
        assert row["backup_count"] == 1 and row["health_reason"] == "fresh"
    finally:
        procs.stop(cfg18, "longhorn")
