"""Behaviours of the real manager the emulator models (issue 12): attach error, Unknown backups,
snapshot-max-count, restore size and expand, failed-backup TTL, the volume list's scan cost."""

from __future__ import annotations

from tests.support.polling import wait_for


def attached_volume(lh, name: str, **fields) -> dict:
    lh.ready_volume(name, **fields)
    assert lh.action("volumes", name, "attach", {"hostId": "sandbox-node"}).status_code == 200
    return lh.wait_volume(name, lambda v: v["state"] == "attached", what=f"{name} attached")


def snapshot_cr(lh, volume: str, name: str) -> dict:
    response = lh.action("volumes", volume, "snapshotCRGet", {"name": name})
    assert response.status_code == 200, response.text
    return response.json()


def test_a_snapshot_of_a_detached_volume_reports_the_attach_error_until_attached(lh):
    lh.post("/sandbox/config", {"snapshot_attach_seconds": 1.5})
    lh.ready_volume("vol-detached")
    created = lh.action("volumes", "vol-detached", "snapshotCRCreate", {"name": "snap-d"}).json()
    assert created["readyToUse"] is False
    assert created["error"] == ("failed to take snapshot because the volume engine vol-detached-e-0 is not "
                                "running. Waiting for the volume to be attached")
    lh.wait_volume("vol-detached", lambda v: v["state"] in ("attaching", "attached"), what="the controller attaching")
    ready = wait_for(lambda: (lambda s: s if s["readyToUse"] else None)(snapshot_cr(lh, "vol-detached", "snap-d")),
                     what="the snapshot ready")
    assert ready["error"] == "" and ready["creationTime"]
    lh.wait_volume("vol-detached", lambda v: v["state"] == "detached", what="detached again")


def test_a_snapshot_of_an_attached_volume_has_no_error(lh):
    attached_volume(lh, "vol-attached")
    created = lh.action("volumes", "vol-attached", "snapshotCRCreate", {"name": "snap-a"}).json()
    assert created["error"] == ""


def test_attachment_is_settable_through_the_control_api(lh):
    lh.ready_volume("vol-ctl")
    assert lh.post("/sandbox/volumes/vol-ctl/attachment", {"attached": True}).status_code == 200
    lh.wait_volume("vol-ctl", lambda v: v["state"] == "attached", what="attached")
    assert lh.post("/sandbox/volumes/vol-ctl/attachment", {"attached": False}).status_code == 200
    lh.wait_volume("vol-ctl", lambda v: v["state"] == "detached", what="detached")
    assert lh.post("/sandbox/volumes/nope/attachment", {"attached": True}).status_code == 400


def test_unknown_backup_state_is_injectable(lh):
    attached_volume(lh, "vol-unknown")
    lh.action("volumes", "vol-unknown", "snapshotCRCreate", {"name": "snap-u"})
    assert lh.post("/sandbox/faults", {"action": "snapshotBackup", "mode": "unknown_async",
                                       "message": "engine reported state weird"}).status_code == 201
    lh.action("volumes", "vol-unknown", "snapshotBackup", {"name": "snap-u"})
    status = wait_for(lambda: next((s for s in lh.volume("vol-unknown")["backupStatus"]
                                    if s["state"] == "Unknown"), None), what="Unknown")
    assert status["error"] == "engine reported state weird"
    # And a running backup can be ended by hand.
    lh.post("/sandbox/config", {"op_seconds": 30})
    lh.action("volumes", "vol-unknown", "snapshotCRCreate", {"name": "snap-u2"})
    lh.action("volumes", "vol-unknown", "snapshotBackup", {"name": "snap-u2"})
    name = wait_for(lambda: next((s["id"] for s in lh.volume("vol-unknown")["backupStatus"]
                                  if s["snapshot"] == "snap-u2"), None), what="the second backup")
    answer = lh.post(f"/sandbox/backups/{name}", {"state": "Unknown"}).json()
    assert answer["state"] == "Unknown"
    assert lh.action("backupvolumes", "vol-unknown", "backupGet", {"name": name}).json()["state"] == "Unknown"


def test_snapshot_limit_refuses_with_the_engine_error_and_deletion_frees_a_slot(lh):
    assert lh.post("/sandbox/config", {"snapshot_max_count": 5}).json()["snapshot_max_count"] == 5
    volume = attached_volume(lh, "vol-limit")
    assert volume["snapshotMaxCount"] == 5
    for i in range(5):
        assert lh.action("volumes", "vol-limit", "snapshotCRCreate", {"name": f"snap-{i}"}).status_code == 200
    wait_for(lambda: snapshot_cr(lh, "vol-limit", "snap-4")["readyToUse"], what="five snapshots")
    refused = lh.action("volumes", "vol-limit", "snapshotCRCreate", {"name": "snap-5"})
    assert refused.status_code == 200  # the CR is created; the engine refuses the snapshot
    message = "snapshot count usage 5 is equal or larger than snapshotMaxCount 5"
    cr = snapshot_cr(lh, "vol-limit", "snap-5")
    assert message in cr["error"] and cr["readyToUse"] is False
    engine = lh.action("volumes", "vol-limit", "snapshotCreate", {"name": "snap-engine"})
    assert engine.status_code == 500 and message in engine.json()["message"]
    assert engine.json()["message"].startswith("failed to create snapshot: ")
    assert lh.action("volumes", "vol-limit", "snapshotCRDelete", {"name": "snap-0"}).status_code == 200
    assert lh.action("volumes", "vol-limit", "snapshotCRCreate", {"name": "snap-6"}).status_code == 200
    ready = wait_for(lambda: (lambda s: s if s["readyToUse"] else None)(snapshot_cr(lh, "vol-limit", "snap-6")),
                     what="a snapshot in the freed slot")
    assert ready["error"] == ""


def test_restore_takes_the_backups_volume_size_and_expand_grows_it(lh, emulator_17):
    lh.ready_volume("vol-src", size="1Gi", files={"x": b"data"}, state_dir=emulator_17.state_dir)
    status = lh.backup("vol-src", "snap-src")
    url = status["backupURL"]
    created = lh.create_volume("vol-restored", size="5Gi", fromBackup=url)
    assert created["size"] == str(1 << 30)  # the webhook overrides the requested size
    during = lh.action("volumes", "vol-restored", "expand", {"size": "2Gi"})
    if during.status_code == 500:  # attaching for the restore: the manager refuses other states
        assert "invalid volume state to expand" in during.json()["message"]
    lh.wait_volume("vol-restored", lambda v: not v["restoreRequired"] and v["state"] == "detached",
                   what="restored and detached")
    grown = lh.action("volumes", "vol-restored", "expand", {"size": "3Gi"})
    assert grown.status_code == 200 and grown.json()["size"] == str(3 << 30)
    same = lh.action("volumes", "vol-restored", "expand", {"size": "1Gi"})
    assert same.status_code == 200 and same.json()["size"] == str(3 << 30)  # not larger: ignored
    bad = lh.action("volumes", "vol-restored", "expand", {"size": "lots"})
    assert bad.status_code == 500 and bad.json()["message"].startswith("failed to parse size")
    assert "expand" in lh.volume("vol-restored")["actions"]


def test_failed_backups_are_deleted_after_the_ttl(lh):
    seed = {"volumes": [{"name": "vol-ttl", "backups": [
        {"name": "backup-00000000000000ok", "state": "Completed"},
        {"name": "backup-0000000000000err", "state": "Error"},
        {"name": "backup-000000000unknown", "state": "Unknown"}]}]}
    assert lh.post("/sandbox/seed", seed).status_code == 200
    lh.post("/sandbox/config", {"failed_backup_ttl_minutes": 0, "backup_poll_seconds": 0.1})
    names = lambda: sorted(b["name"] for b in lh.action("backupvolumes", "vol-ttl", "backupList").json()["data"])  # noqa: E731
    assert len(names()) == 3  # TTL 0: never deleted
    lh.post("/sandbox/config", {"failed_backup_ttl_minutes": 0.01})  # 0.6 s
    wait_for(lambda: names() == ["backup-00000000000000ok"], what="the failed backups deleted")


def test_volume_list_scans_every_backup_for_every_volume(lh):
    def seed(prefix, volumes, backups):
        body = {"volumes": [{"name": f"{prefix}-{i}", "backups": [{} for _ in range(backups)]}
                            for i in range(volumes)]}
        assert lh.post("/sandbox/seed", body).status_code == 200

    def pairs_of_one_list():
        before = lh.get("/sandbox/state").json()["scanPairs"]
        assert lh.get("/v1/volumes").status_code == 200
        return lh.get("/sandbox/state").json()["scanPairs"] - before

    seed("small", 10, 5)
    assert pairs_of_one_list() == 10 * 50
    seed("more", 10, 5)
    assert pairs_of_one_list() == 20 * 100  # twice the volumes, twice the backups: four times the work
    before = lh.get("/sandbox/state").json()["scanPairs"]
    lh.volume("small-0")
    assert lh.get("/sandbox/state").json()["scanPairs"] - before == 100  # one volume: every backup once
    assert lh.get("/sandbox/config").json()["volume_list_scan_ns"] == 50.0


def test_auto_cleanup_deletes_the_snapshot_after_the_backup(lh, emulator_17):
    lh.post("/sandbox/config", {"auto_cleanup_snapshot_after_backup": True})
    lh.ready_volume("vol-clean", files={"f": b"1"}, state_dir=emulator_17.state_dir)
    lh.backup("vol-clean", "snap-clean")
    wait_for(lambda: lh.action("volumes", "vol-clean", "snapshotCRGet", {"name": "snap-clean"}).status_code == 404,
             what="the snapshot deleted")
    assert lh.post("/sandbox/config", {"auto_cleanup_snapshot_after_backup": "yes"}).status_code == 400


def test_config_rejects_unknown_or_bad_switches(lh):
    assert lh.post("/sandbox/config", {"snapshot_max_count": 1}).status_code == 400
    assert lh.post("/sandbox/config", {"nonsense": 1}).status_code == 400
    assert lh.post("/sandbox/config", {"failed_backup_ttl_minutes": -1}).status_code == 400
