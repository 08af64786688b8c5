"""State survives the emulator being killed and restarted; bulk seeding at benchmark scale."""

from __future__ import annotations

import json
import signal

import pytest
import requests

from tests.support.polling import wait_for


def test_volumes_backups_and_running_work_survive_a_kill(spare_emulator):
    lh = spare_emulator.start().client
    state = spare_emulator.state_dir
    lh.ready_volume("vol-a", {"data.bin": b"\x00\x01payload"}, state)
    done = lh.backup("vol-a", "snap-1", labels={"k": "v"})
    lh.post("/sandbox/config", {"op_seconds": 4.0})
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "snap-2"})
    wait_for(lambda: lh.action("volumes", "vol-a", "snapshotCRGet", {"name": "snap-2"}).json()["readyToUse"])
    lh.action("volumes", "vol-a", "snapshotBackup", {"name": "snap-2"})
    running = wait_for(lambda: next((s for s in lh.volume("vol-a")["backupStatus"]
                                     if s["snapshot"] == "snap-2" and s["state"] == "InProgress"), None))

    assert spare_emulator.stop(signal.SIGKILL) == -signal.SIGKILL
    with pytest.raises(requests.ConnectionError):
        lh.get("/v1/volumes", timeout=1)
    spare_emulator.start()

    volume = lh.volume("vol-a")
    assert volume["lastBackup"] == done["id"]
    listed = {b["name"]: b for b in lh.action("backupvolumes", "vol-a", "backupList").json()["data"]}
    assert listed[done["id"]]["state"] == "Completed" and listed[done["id"]]["labels"]["k"] == "v"
    # The backup that was running when the emulator died carries on from where it was.
    finished = lh.wait_volume("vol-a", lambda v: all(s["state"] == "Completed" for s in v["backupStatus"]))
    assert {s["id"] for s in finished["backupStatus"]} == {done["id"], running["id"]}
    lh.post("/sandbox/config", {"op_seconds": 0.5})
    lh.create_volume("restored", fromBackup=done["backupURL"])
    lh.wait_volume("restored", lambda v: not v["restoreRequired"] and v["state"] == "detached")
    assert (state / "volumes" / "restored" / "data.bin").read_bytes() == b"\x00\x01payload"


def test_graceful_stop_writes_a_snapshot(spare_emulator):
    lh = spare_emulator.start().client
    lh.create_volume("vol-a")
    assert spare_emulator.stop(signal.SIGTERM) == 0
    snapshot = json.loads((spare_emulator.state_dir / "state.json").read_text())
    assert "vol-a" in snapshot["tables"]["volumes"]
    assert spare_emulator.start().client.volume("vol-a")["name"] == "vol-a"


def test_a_journal_line_cut_short_by_a_crash_is_ignored(spare_emulator):
    lh = spare_emulator.start().client
    lh.create_volume("vol-a")
    spare_emulator.stop(signal.SIGKILL)
    journal = max(spare_emulator.state_dir.glob("journal-*.jsonl"))
    with open(journal, "a") as handle:
        handle.write('["volumes","vol-b",{"name":')  # a write the crash interrupted
    spare_emulator.start()
    assert lh.volume("vol-a")["name"] == "vol-a"
    assert lh.get("/v1/volumes/vol-b").status_code == 404
    lh.create_volume("vol-c")  # and the journal is usable again
    spare_emulator.stop(signal.SIGKILL)
    spare_emulator.start()
    assert [v["name"] for v in lh.get("/v1/volumes").json()["data"]] == ["vol-a", "vol-c"]


def test_seed_loads_historical_backups(lh, emulator_17):
    body = {"volumes": [{
        "name": "pvc-1", "size": "2Gi", "created": "2024-01-01T00:00:00Z", "files": {"a/b.txt": "seeded"},
        "backups": [
            {"name": "backup-00000000000000bb", "created": "2024-03-01T10:00:00Z", "state": "Completed",
             "labels": {"team": "db"}, "snapshotName": "snap-old"},
            {"name": "backup-00000000000000aa", "created": "2024-03-02T10:00:00Z", "state": "Completed",
             "files": {"a/b.txt": "from the backup"}},
            {"name": "backup-00000000000000cc", "state": "Error", "error": "s3 unreachable"},
            {"name": "backup-00000000000000dd", "state": "InProgress", "progress": 40},
        ]}],
        "backups": [{"volume": "gone", "created": "2023-12-24T00:00:00Z", "volumeSize": "1073741824"}]}
    answer = lh.post("/sandbox/seed", body).json()
    assert answer["volumes"] == 1 and answer["backups"] == 5
    volume = lh.volume("pvc-1")
    assert volume["created"] == "2024-01-01 00:00:00 +0000 UTC" and volume["size"] == "2147483648"
    assert volume["lastBackup"] == "backup-00000000000000aa" and volume["lastBackupAt"] == "2024-03-02T10:00:00Z"
    states = {s["id"]: (s["state"], s["progress"], s["error"]) for s in volume["backupStatus"]}
    assert states == {"backup-00000000000000aa": ("Completed", 100, ""), "backup-00000000000000bb": ("Completed", 100, ""),
                      "backup-00000000000000cc": ("Error", 0, "s3 unreachable"),
                      "backup-00000000000000dd": ("InProgress", 40, "")}
    old = lh.action("backupvolumes", "pvc-1", "backupGet", {"name": "backup-00000000000000bb"}).json()
    assert old["labels"] == {"team": "db", "longhorn.io/volume-access-mode": "rwo"} and old["snapshotName"] == "snap-old"
    bvs = {bv["name"]: bv for bv in lh.get("/v1/backupvolumes").json()["data"]}
    assert bvs["pvc-1"]["created"] == "2024-03-01T10:00:00Z" and bvs["gone"]["lastBackupAt"] == "2023-12-24T00:00:00Z"
    # A seeded backup with files restores those; one without restores the volume as it is now.
    state = emulator_17.state_dir
    for name, expected in (("backup-00000000000000aa", "from the backup"), ("backup-00000000000000bb", "seeded")):
        target = f"r-{name[-2:]}"
        lh.create_volume(target, fromBackup=f"s3://backupbucket@us-east-1/?backup={name}&volume=pvc-1")
        lh.wait_volume(target, lambda v: not v["restoreRequired"] and v["state"] == "detached")
        assert (state / "volumes" / target / "a" / "b.txt").read_text() == expected


def test_seed_refuses_bad_input(lh):
    assert lh.post("/sandbox/seed", {"volumes": [{"name": "Bad_Name"}]}).status_code == 400
    assert lh.post("/sandbox/seed", {"volumes": [{"name": "ok", "files": {"../escape": "x"}}]}).status_code == 400
    answer = lh.post("/sandbox/seed", {"backups": [{"volume": "v1", "state": "Weird"}]})
    assert answer.status_code == 400 and "state" in answer.json()["error"]


def test_seeding_10000_volumes_with_50_backups_each(spare_emulator):
    lh = spare_emulator.start().client
    volumes = [{"name": f"pvc-{i:05d}", "size": "1Gi", "backups": [
        {"created": f"2024-{1 + j // 28:02d}-{1 + j % 28:02d}T{i % 24:02d}:00:00Z",
         "state": "Error" if j % 25 == 24 else "Completed", "labels": {"soteria.io/pvc": f"pvc-{i:05d}"},
         "snapshotName": f"soteria-{i}-{j}", "size": "1048576"} for j in range(50)]} for i in range(10_000)]
    # How fast seeding is belongs to the benchmarks (docs/benchmarks.md), not to a timed assertion.
    answer = lh.post("/sandbox/seed", {"volumes": volumes}, timeout=300).json()
    assert answer == {"volumes": 10_000, "backups": 500_000, "seconds": answer["seconds"]}
    # The emulator's own encoding speed: without the modelled manager scan (50 ns per pair here
    # would add 10,000 x 500,000 x 50 ns = 250 s; see test_longhorn_fidelity for the model).
    assert lh.post("/sandbox/config", {"volume_list_scan_ns": 0}).status_code == 200
    listed = lh.get("/v1/volumes", timeout=120).json()["data"]
    assert lh.get("/sandbox/state").json()["scanPairs"] == 10_000 * 500_000
    assert len(listed) == 10_000 and all(len(v["backupStatus"]) == 50 for v in listed)
    assert listed[123]["lastBackupAt"] == "2024-02-21T03:00:00Z"  # j=49 failed; j=48 is the last good one
    backups = lh.action("backupvolumes", "pvc-00123", "backupList").json()["data"]
    assert len(backups) == 50 and [b["name"] for b in backups] == sorted(b["name"] for b in backups)
    spare_emulator.stop(signal.SIGKILL)
    spare_emulator.start()
    assert lh.get("/sandbox/state").json()["backups"] == 500_000
