"""Backups, backup volumes and restores in the Longhorn 1.7 emulator."""

from __future__ import annotations

import json
import os
import re

import pytest

from tests.support.emulator import error_body
from tests.support.polling import wait_for

BACKUP_URL = re.compile(r"^s3://backupbucket@us-east-1/\?backup=(backup-[0-9a-f]{16})&volume=([a-z0-9-]+)$")
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def state_dir(emulator_17):
    return emulator_17.state_dir


def test_backup_goes_through_in_progress_to_completed(lh, state_dir):
    lh.post("/sandbox/config", {"op_seconds": 2.0})
    lh.ready_volume("vol-a", {"data.txt": b"hello\n"}, state_dir)
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "snap-1"})
    wait_for(lambda: lh.action("volumes", "vol-a", "snapshotCRGet", {"name": "snap-1"}).json()["readyToUse"])
    answer = lh.action("volumes", "vol-a", "snapshotBackup", {"name": "snap-1", "labels": {"app": "web"}})
    assert answer.status_code == 200 and answer.json()["type"] == "volume"  # the volume, not the backup
    (first,) = answer.json()["backupStatus"]
    assert re.fullmatch(r"backup-[0-9a-f]{16}", first["id"]) and first["state"] == ""
    assert first["links"] is None and first["actions"] is None and "type" not in first
    seen = []

    def completed():
        status = lh.volume("vol-a")["backupStatus"][0]
        seen.append((status["state"], status["progress"]))
        return status if status["state"] == "Completed" else None

    done = wait_for(completed, what="backup completed")
    in_progress = [p for s, p in seen if s == "InProgress"]
    assert len(in_progress) >= 2 and in_progress == sorted(in_progress) and in_progress[-1] > in_progress[0]
    assert done["progress"] == 100 and done["error"] == "" and done["size"] == "6"
    url = BACKUP_URL.match(done["backupURL"])
    assert url and url.groups() == (first["id"], "vol-a")
    volume = lh.wait_volume("vol-a", lambda v: v["lastBackup"] == first["id"])
    assert RFC3339.match(volume["lastBackupAt"])
    (backup,) = lh.action("backupvolumes", "vol-a", "backupList").json()["data"]
    assert backup["type"] == "backup" and backup["actions"] == {}
    assert backup["links"]["self"] == f"{lh.url}/v1/backups/{first['id']}"
    assert backup["state"] == "Completed" and backup["url"] == done["backupURL"]
    assert backup["snapshotName"] == "snap-1" and backup["volumeName"] == "vol-a"
    assert backup["volumeSize"] == "1073741824" and backup["backupMode"] == "incremental"
    assert RFC3339.match(backup["created"]) and RFC3339.match(backup["snapshotCreated"])
    assert backup["labels"] == {"app": "web", "longhorn.io/volume-access-mode": "rwo"}
    assert "backupTargetName" not in backup


def test_the_volume_is_attached_for_the_backup_and_detached_after(lh, state_dir):
    lh.post("/sandbox/config", {"op_seconds": 2.0})
    lh.ready_volume("vol-a")
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "snap-1"})
    lh.action("volumes", "vol-a", "snapshotBackup", {"name": "snap-1"})
    attached = lh.wait_volume("vol-a", lambda v: v["state"] == "attached")
    assert attached["ready"] is False  # auto-attached by a controller, not for a workload
    assert any(t.startswith("backup-controller-") for t in attached["volumeAttachment"]["attachments"])
    lh.wait_volume("vol-a", lambda v: v["backupStatus"][0]["state"] == "Completed" and v["state"] == "detached")


@pytest.mark.parametrize("body, message", [
    ({"name": ""}, "failed to backup snapshot: volume and snapshot name required"),
    ({"name": "s", "labels": {"bad key!": "v"}},
     "failed to backup snapshot: at least one error encountered while validating backup label with key bad key!"),
    ({"name": "s", "labels": {"k": ""}}, "value for label with key k cannot be empty"),
    ({"name": "s", "labels": {"KubernetesStatus": "{}"}},
     "specified snapshot backup labels contain reserved keyword KubernetesStatus"),
    ({"name": "s", "backupMode": "differential"},
     'admission webhook "validator.longhorn.io" denied the request: BackupMode differential is not a valid option'),
    ({"name": "s", "labels": {"k": 1}}, "json: cannot unmarshal number into Go struct field SnapshotInput.labels"),
])
def test_snapshot_backup_rejects_bad_input(lh, body, message):
    lh.create_volume("vol-a")
    error_body(lh.action("volumes", "vol-a", "snapshotBackup", body), 500, message)
    assert lh.volume("vol-a")["backupStatus"] == []


def test_full_backup_mode_is_recorded(lh):
    lh.ready_volume("vol-a")
    status = lh.backup("vol-a", "snap-1", backupMode="full")
    backup = lh.action("backupvolumes", "vol-a", "backupGet", {"name": status["id"]}).json()
    assert backup["backupMode"] == "full"


def test_backup_of_a_missing_snapshot_waits_in_pending(lh):
    lh.ready_volume("vol-a")
    lh.action("volumes", "vol-a", "snapshotBackup", {"name": "later"})
    pending = lh.volume("vol-a")["backupStatus"][0]
    assert pending["state"] == "Pending"
    backup = lh.action("backupvolumes", "vol-a", "backupGet", {"name": pending["id"]}).json()
    assert backup["messages"] == {"info": "Failed to get the Snapshot later"}
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "later"})
    lh.wait_volume("vol-a", lambda v: v["backupStatus"][0]["state"] == "Completed")


def test_backups_are_sorted_by_name_not_by_time(lh):
    lh.ready_volume("vol-a")
    ids = [lh.backup("vol-a", f"snap-{i}")["id"] for i in range(4)]
    listed = [b["name"] for b in lh.action("backupvolumes", "vol-a", "backupList").json()["data"]]
    assert listed == sorted(ids)
    assert [s["id"] for s in lh.volume("vol-a")["backupStatus"]] == sorted(ids)
    assert lh.volume("vol-a")["lastBackup"] == ids[-1]  # the newest, whatever its name


def test_backup_volumes_list_get_and_unknown_ids(lh):
    lh.ready_volume("vol-a")
    status = lh.backup("vol-a", "snap-1")
    body = lh.get("/v1/backupvolumes").json()
    assert body["resourceType"] == "backupVolume"
    (bv,) = body["data"]
    assert bv["id"] == bv["name"] == "vol-a" and bv["type"] == "backupVolume"  # 1.7: the volume name
    assert bv["lastBackupName"] == status["id"] and RFC3339.match(bv["created"]) and bv["size"] == "1073741824"
    assert set(bv["actions"]) == {"backupList", "backupGet", "backupDelete", "backupVolumeSync"}
    assert "volumeName" not in bv and "backupTargetName" not in bv
    assert lh.get("/v1/backupvolumes/vol-a").json()["lastBackupName"] == status["id"]
    # The manager answers an unknown id with an empty placeholder, not a 404.
    ghost = lh.get("/v1/backupvolumes/ghost")
    assert ghost.status_code == 200
    assert ghost.json()["name"] == "ghost" and ghost.json()["created"] == "" and ghost.json()["lastBackupName"] == ""
    listed = lh.action("backupvolumes", "ghost", "backupList")
    assert listed.status_code == 200 and listed.json()["data"] == []  # 1.7 lists by label
    assert lh.action("backupvolumes", "vol-a", "backupListByVolume", {"name": "vol-a"}).status_code == 405  # 1.8+


def test_backup_get_and_delete(lh):
    lh.ready_volume("vol-a")
    first = lh.backup("vol-a", "snap-1")["id"]
    second = lh.backup("vol-a", "snap-2")["id"]
    # Backups are found by name, whatever backup volume is in the path.
    assert lh.action("backupvolumes", "other", "backupGet", {"name": first}).json()["name"] == first
    error_body(lh.action("backupvolumes", "vol-a", "backupGet", {"name": "backup-0000000000000000"}), 404,
               "failed to get backup 'backup-0000000000000000' of volume 'vol-a': "
               'backup.longhorn.io "backup-0000000000000000" not found')
    error_body(lh.action("backupvolumes", "vol-a", "backupGet", {}), 500, "empty backup name is not allowed")
    answer = lh.action("backupvolumes", "vol-a", "backupDelete", {"name": second})
    assert answer.status_code == 200 and answer.json()["type"] == "backupVolume"
    wait_for(lambda: [b["name"] for b in lh.action("backupvolumes", "vol-a", "backupList").json()["data"]] == [first],
             what="backup deleted")
    assert lh.volume("vol-a")["lastBackup"] == first
    assert lh.action("backupvolumes", "vol-a", "backupDelete", {"name": second}).status_code == 200  # idempotent


def test_deleting_a_backup_volume_deletes_its_backups(lh, state_dir):
    lh.ready_volume("vol-a", {"f": b"x"}, state_dir)
    lh.backup("vol-a", "snap-1")
    assert (state_dir / "backupstore" / "vol-a").is_dir()
    response = lh.delete("/v1/backupvolumes/vol-a")
    assert response.status_code == 200 and response.content == b""
    wait_for(lambda: lh.get("/v1/backupvolumes").json()["data"] == [], what="backup volume gone")
    assert lh.volume("vol-a")["backupStatus"] == [] and lh.volume("vol-a")["lastBackup"] == ""
    assert not (state_dir / "backupstore" / "vol-a").exists()
    error_body(lh.delete("/v1/backupvolumes/vol-a"), 404,
               "failed to delete backup volume 'vol-a': backupvolumes.longhorn.io \"vol-a\" not found")


def test_the_backup_keeps_the_files_as_they_were_at_snapshot_time(lh, state_dir):
    lh.ready_volume("vol-a", {"a.txt": b"before"}, state_dir)
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "snap-1"})
    (state_dir / "volumes" / "vol-a" / "a.txt").write_bytes(b"after")
    lh.action("volumes", "vol-a", "snapshotBackup", {"name": "snap-1"})
    status = lh.wait_volume("vol-a", lambda v: v["backupStatus"][0]["state"] == "Completed")["backupStatus"][0]
    assert (state_dir / "backupstore" / "vol-a" / status["id"] / "a.txt").read_bytes() == b"before"


def test_restore_round_trip_is_byte_for_byte(lh, state_dir):
    lh.post("/sandbox/config", {"op_seconds": 1.5})
    files = {"text.txt": b"hello\n", "dir/bin.dat": os.urandom(4096), "empty": b""}
    lh.ready_volume("src", files, state_dir)
    url = lh.backup("src", "snap-1", labels={"ticket": "T-1"})["backupURL"]
    created = lh.create_volume("restored", size="1", fromBackup=url, staleReplicaTimeout=30)
    assert created["restoreRequired"] is True and created["restoreInitiated"] is True
    assert created["size"] == "1073741824"  # taken from the backup
    assert created["fromBackup"] == url and created["ready"] is False
    assert created["conditions"]["Restore"]["status"] == "True"
    assert created["conditions"]["Restore"]["reason"] == "RestoreInProgress"
    progress = []

    def restored():
        volume = lh.volume("restored")
        progress.extend(s["progress"] for s in volume["restoreStatus"][:1])
        if volume["restoreStatus"]:
            status = volume["restoreStatus"][0]
            assert status["backupURL"] == url and status["links"] is None
            assert volume["controllers"][0]["requestedBackupRestore"] in ("", BACKUP_URL.match(url).group(1))
        return volume if not volume["restoreRequired"] and volume["state"] == "detached" else None

    volume = wait_for(restored, what="restore finished")
    assert progress and progress == sorted(progress) and max(progress) > min(progress)
    assert volume["robustness"] == "unknown" and volume["ready"] is True
    assert volume["conditions"]["Restore"]["status"] == "False"
    assert volume["controllers"][0]["lastRestoredBackup"] == BACKUP_URL.match(url).group(1)
    for rel, data in files.items():
        assert (state_dir / "volumes" / "restored" / rel).read_bytes() == data


def test_restore_from_an_unknown_backup_is_refused(lh):
    lh.ready_volume("src")
    lh.backup("src", "snap-1")
    url = "s3://backupbucket@us-east-1/?backup=backup-0123456789abcdef&volume=src"
    missing = 'backup.longhorn.io "backup-0123456789abcdef" not found'
    body = {"name": "restored", "size": "1Gi", "numberOfReplicas": 3, "fromBackup": url}
    # Without an access mode the mutator looks the backup up first (for its access-mode label).
    error_body(lh.post("/v1/volumes", body), 500, f"failed to get backup backup-0123456789abcdef: {missing}")
    error_body(lh.post("/v1/volumes", {**body, "accessMode": "rwo"}), 500,
               'unable to create volume restored: admission webhook "mutator.longhorn.io" denied the request: '
               f"cannot get backup backup-0123456789abcdef: {missing}")
    error_body(lh.post("/v1/volumes", {"name": "restored", "size": "1Gi", "numberOfReplicas": 3, "accessMode": "rwo",
                                       "fromBackup": url.replace("volume=src", "volume=nosuch")}),
               500, 'cannot get backup volume nosuch: backupvolume.longhorn.io "nosuch" not found')
    assert lh.get("/v1/volumes/restored").status_code == 404


def test_restore_takes_the_access_mode_and_kubernetes_status_from_the_backup(lh):
    kube_status = {"pvName": "pv-1", "pvStatus": "Bound", "namespace": "shop", "pvcName": "data",
                   "lastPVCRefAt": "", "workloadsStatus": [{"podName": "web-0", "podStatus": "Running",
                                                            "workloadName": "web", "workloadType": "StatefulSet"}],
                   "lastPodRefAt": ""}
    lh.post("/sandbox/seed", {"volumes": [{"name": "src", "accessMode": "rwx", "kubernetesStatus": kube_status}]})
    status = lh.backup("src", "snap-1")
    backup = lh.action("backupvolumes", "src", "backupGet", {"name": status["id"]}).json()
    assert json.loads(backup["labels"]["KubernetesStatus"]) == kube_status
    assert backup["labels"]["longhorn.io/volume-access-mode"] == "rwx"
    restored = lh.post("/v1/volumes", {"name": "restored", "size": "1Gi", "numberOfReplicas": 3,
                                       "fromBackup": status["backupURL"]}).json()
    assert restored["accessMode"] == "rwx"
    status_after = restored["kubernetesStatus"]
    assert status_after["pvName"] == "" and status_after["pvStatus"] == ""  # PV fields are not restored
    assert status_after["pvcName"] == "data" and status_after["namespace"] == "shop"
    assert status_after["lastPVCRefAt"] == backup["snapshotCreated"]  # marked historical
