"""The --version 1.8 switch: backup volume names, new fields, backupListByVolume, Deleting."""

from __future__ import annotations

import hashlib

from tests.support.emulator import error_body
from tests.support.polling import wait_for


def bv_name(volume: str) -> str:
    return f"{volume}-{hashlib.sha256(f'{volume}-default'.encode()).hexdigest()[:8]}"


def test_backup_volumes_get_deterministic_names_and_new_fields(lh18):
    lh18.ready_volume("pvc-abc")
    assert lh18.volume("pvc-abc")["backupTargetName"] == "default"
    status = lh18.backup("pvc-abc", "snap-1")
    (bv,) = lh18.get("/v1/backupvolumes").json()["data"]
    assert bv["id"] == bv["name"] == bv_name("pvc-abc") == "pvc-abc-8521839b"  # the reference's example
    assert bv["volumeName"] == "pvc-abc" and bv["backupTargetName"] == "default"
    assert "backupListByVolume" in bv["actions"]
    (backup,) = lh18.action("backupvolumes", bv["id"], "backupList").json()["data"]
    assert backup["name"] == status["id"] and backup["backupTargetName"] == "default"
    assert backup["volumeName"] == "pvc-abc"
    assert status["backupURL"].endswith(f"?backup={status['id']}&volume=pvc-abc")  # the volume, not the BV name


def test_backup_list_by_volume_name_is_empty_and_by_volume_works(lh18):
    lh18.ready_volume("pvc-abc")
    ids = sorted(lh18.backup("pvc-abc", f"snap-{i}")["id"] for i in range(2))
    # The 1.8 pitfall: the volume name is no longer a backup volume id.
    unknown = lh18.action("backupvolumes", "pvc-abc", "backupList")
    assert unknown.status_code == 200 and unknown.json()["data"] == []
    by_volume = lh18.action("backupvolumes", "any-id", "backupListByVolume", {"name": "pvc-abc"})
    assert by_volume.status_code == 200 and [b["name"] for b in by_volume.json()["data"]] == ids
    placeholder = lh18.get("/v1/backupvolumes/pvc-abc").json()
    assert placeholder["volumeName"] == "" and placeholder["backupTargetName"] == ""


def test_deleted_backups_pass_through_deleting(lh18):
    lh18.post("/sandbox/config", {"op_seconds": 3.0})  # deletion steps of 0.3 s
    lh18.ready_volume("pvc-abc")
    first = lh18.backup("pvc-abc", "snap-1")["id"]
    bv = bv_name("pvc-abc")
    lh18.action("backupvolumes", bv, "backupDelete", {"name": first})
    assert lh18.action("backupvolumes", bv, "backupGet", {"name": first}).json()["state"] == "Deleting"
    assert lh18.volume("pvc-abc")["backupStatus"][0]["state"] == "Deleting"
    wait_for(lambda: lh18.volume("pvc-abc")["backupStatus"] == [], what="backup gone")


def test_deleting_a_backup_volume_marks_its_backups_deleting(lh18):
    lh18.post("/sandbox/config", {"op_seconds": 3.0})
    lh18.ready_volume("pvc-abc")
    lh18.backup("pvc-abc", "snap-1")
    assert lh18.delete(f"/v1/backupvolumes/{bv_name('pvc-abc')}").status_code == 200
    assert lh18.volume("pvc-abc")["backupStatus"][0]["state"] == "Deleting"
    wait_for(lambda: lh18.get("/v1/backupvolumes").json()["data"] == [], what="backup volume gone")


def test_restore_from_a_18_backup(lh18):
    lh18.ready_volume("pvc-abc")
    url = lh18.backup("pvc-abc", "snap-1")["backupURL"]
    restored = lh18.create_volume("restored", fromBackup=url)
    assert restored["restoreRequired"] is True and restored["backupTargetName"] == "default"
    lh18.wait_volume("restored", lambda v: not v["restoreRequired"] and v["state"] == "detached")


def test_18_settings_and_backup_targets(lh18):
    assert lh18.get("/v1/settings/current-longhorn-version").json()["value"] == "v1.8.1"
    error_body(lh18.get("/v1/settings/backup-target"), 500, "setting backup-target is not supported")
    targets = lh18.get("/v1/backuptargets").json()
    assert targets["createTypes"] == {"backupTarget": f"{lh18.url}/v1/backuptargets"}
    target = lh18.get("/v1/backuptargets/default").json()
    assert target["backupTargetURL"] == "s3://backupbucket@us-east-1/"
    assert set(target["actions"]) == {"backupTargetSync", "backupTargetUpdate"}
    error_body(lh18.get("/v1/backuptargets/other"), 404, 'backuptarget.longhorn.io "other" not found')
