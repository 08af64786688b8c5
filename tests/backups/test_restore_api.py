"""POST /v1/restores (and its alias) at the client seam: selection, conflicts, cleanup."""

import threading

import pytest

from soteria_site.core.errors import UpstreamError, UpstreamTimeout

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, body, path="/v1/restores"):
    return client.post(path, body, content_type="application/json")


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", size="50Gi", backups=[
        ("Completed", 30, None), ("Completed", 5, None), ("InProgress", 1, None), ("Error", 2, None)])
    cluster.add_pvc("ai", "other", backups=[("Completed", 0.5, None)])
    cluster.namespaces.add("ai-restore")
    return cluster


def test_restore_creates_volume_pv_and_pvc_from_the_newest_completed_backup(client, world):
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "snapshot": "latest",
                              "target_pvc": "restore-llm-cache"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["backup"] == "backup-pvc-ai-llm-cache-1"  # 5 h old: newer ones are unfinished or failed
    assert body["target_namespace"] == "ai" and body["target_pvc"] == "restore-llm-cache"
    assert body["volume"].startswith("pvc-") and body["pv"] == body["volume"]
    assert body["requested_by"] == "anonymous" and body["dry_run"] is False
    assert world.created_volume_args["from_backup"] == body["backup_url"]
    pvc = world.pvcs[("ai", "restore-llm-cache")]
    assert pvc.volume_name == body["pv"] and pvc.storage_class == "longhorn" and pvc.requested == "50Gi"
    assert pvc.access_modes == ("ReadWriteOnce",)
    assert pvc.labels == {"soteria.io/restored-from": "ai.llm-cache", "soteria.io/backup": body["backup"]}
    [pv_body] = world.pv_bodies
    assert pv_body["spec"]["claimRef"]["name"] == "restore-llm-cache"
    assert pv_body["spec"]["csi"] == {"driver": "driver.longhorn.io", "volumeHandle": body["volume"], "fsType": "ext4"}
    reasons = {(e["involvedObject"]["name"], e["reason"]) for e in world.events}
    assert reasons == {("llm-cache", "RestoreStarted"), ("restore-llm-cache", "RestoredFromBackup")}


def test_legacy_alias_behaves_the_same(client, world):
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "r1", "dry_run": True},
                     path="/v1/restore-test")
    assert response.status_code == 200
    assert response.json()["backup"] == "backup-pvc-ai-llm-cache-1"


def test_named_snapshot_or_backup_is_used_and_must_be_completed(client, world):
    body = _post(client, {"namespace": "ai", "pvc": "llm-cache", "snapshot": "snap-0", "target_pvc": "r",
                          "dry_run": True}).json()
    assert body["backup"] == "backup-pvc-ai-llm-cache-0"
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "snapshot": "backup-pvc-ai-llm-cache-2",
                              "target_pvc": "r"})
    assert response.status_code == 409 and response.json()["error"] == "backup_not_completed"
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "snapshot": "backup-pvc-ai-other-0",
                              "target_pvc": "r"})
    assert response.status_code == 404  # another PVC's backup is never chosen


def test_backup_url_must_exist_and_its_volume_is_reported(client, world):
    url = "s3://b@r/?backup=backup-pvc-ai-llm-cache-0&volume=pvc-ai-llm-cache"
    body = _post(client, {"namespace": "ai", "pvc": "llm-cache", "backup_url": url, "target_pvc": "r",
                          "dry_run": True}).json()
    assert body["source_volume"] == "pvc-ai-llm-cache" and body["backup"] == "backup-pvc-ai-llm-cache-0"
    missing = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "r",
                             "backup_url": "s3://b@r/?backup=backup-nope&volume=pvc-ai-llm-cache"})
    assert missing.status_code == 404 and missing.json()["field"] == "backup_url"
    # Another volume's backups are refused (tests/backups/test_restore_backup_url.py).


def test_existing_target_is_refused_with_409_naming_it(client, world):
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "other"})
    assert response.status_code == 409
    assert response.json()["error"] == "target_exists" and response.json()["existing"] == "ai/other"
    assert world.mutating_calls == {}


def test_missing_target_namespace_is_404(client, world):
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_namespace": "nowhere",
                              "target_pvc": "r"})
    assert response.status_code == 404 and response.json()["field"] == "target_namespace"


def test_target_pvc_is_required(client, world):
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 400 and response.json()["field"] == "target_pvc"


def test_dry_run_plans_without_mutating(client, world):
    body = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_namespace": "ai-restore",
                          "target_pvc": "r", "dry_run": True}).json()
    assert [c["call"] for c in body["plan"]] == ["longhorn.createVolume", "kubernetes.createPersistentVolume",
                                                 "kubernetes.createPersistentVolumeClaim"]
    assert world.mutating_calls == {}


@pytest.mark.parametrize("step,leftovers", [
    ("create_volume", set()),
    ("get_volume", {"volume"}),
    ("create_pv", {"volume"}),
    ("create_pvc", {"volume", "pv"}),
])
def test_failure_at_each_step_is_cleaned_up(client, world, monkeypatch, step, leftovers):
    error = UpstreamTimeout("longhorn", "slow") if step == "get_volume" else UpstreamError("kubernetes", f"{step} broke")
    original = getattr(world, step)
    volumes_before, pvs_before = set(world.volumes), set(world.pvs)

    def failing(*args, **kwargs):
        if step == "get_volume" and args[0] in volumes_before:
            return original(*args, **kwargs)
        raise error

    from backups.clients import longhorn
    from soteria_site.core import kubernetes
    monkeypatch.setattr(longhorn if step in ("create_volume", "get_volume") else kubernetes, step, failing)
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "r"})
    assert response.status_code in (502, 504)
    body = response.json()
    assert body["cleanup"]["succeeded"] is True
    assert {d.split()[0] for d in body["cleanup"]["deleted"]} == leftovers
    assert set(world.volumes) == volumes_before and set(world.pvs) == pvs_before
    assert ("ai", "r") not in world.pvcs
    assert any(e["reason"] == "RestoreFailed" for e in world.events)


def test_two_simultaneous_restores_to_one_target_one_wins(client, world):
    from django.test import Client

    results = []
    barrier = threading.Barrier(2)

    def go():
        barrier.wait()
        results.append(Client().post("/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "race"},
                                     content_type="application/json").status_code)

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [200, 409]
    restored = [v for v in world.volumes.values() if v.from_backup]
    assert len(restored) == 1
