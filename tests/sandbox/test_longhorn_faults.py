"""The emulator's control API: fault injection, call counting, speed."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from tests.support.emulator import error_body
from tests.support.polling import wait_for


def add_fault(lh, **fault) -> dict:
    response = lh.post("/sandbox/faults", fault)
    assert response.status_code == 201, response.text
    return response.json()


def test_error_fault_fails_the_next_n_calls_with_a_longhorn_error(lh):
    add_fault(lh, action="volumes.list", mode="error", count=2, message="manager is down")
    assert lh.get("/sandbox/faults").json()["faults"][0]["action"] == "volumes.list"
    for _ in range(2):
        error_body(lh.get("/v1/volumes"), 500, "manager is down")
    assert lh.get("/v1/volumes").status_code == 200
    assert lh.get("/sandbox/faults").json()["faults"] == []


def test_fault_on_an_action_name_and_one_target(lh):
    lh.create_volume("vol-a")
    lh.create_volume("vol-b")
    add_fault(lh, action="snapshotBackup", mode="error", target="vol-b", status=503)
    assert lh.action("volumes", "vol-a", "snapshotBackup", {"name": "s"}).status_code == 200
    response = lh.action("volumes", "vol-b", "snapshotBackup", {"name": "s"})
    assert response.status_code == 503 and response.json()["code"] == "Service Unavailable"
    assert lh.volume("vol-b")["backupStatus"] == []  # the failed call did nothing


def test_wildcard_fault_until_cleared(lh):
    add_fault(lh, action="*", mode="error", count=0)
    for path in ("/v1/volumes", "/v1/backupvolumes", "/v1/settings"):
        assert lh.get(path).status_code == 500
    assert lh.delete("/sandbox/faults").json() == {"cleared": 1}
    assert lh.get("/v1/volumes").status_code == 200


def test_slow_fault_delays_then_answers(lh):
    add_fault(lh, action="backupvolumes.list", mode="slow", delay=0.4)
    started = time.monotonic()
    response = lh.get("/v1/backupvolumes")
    assert response.status_code == 200 and time.monotonic() - started >= 0.4


def test_timeout_fault_hangs_until_cleared_and_does_nothing(lh):
    add_fault(lh, action="volume.create", mode="timeout", count=2, delay=30)
    with pytest.raises(requests.Timeout):
        lh.post("/v1/volumes", {"name": "vol-a", "size": "1Gi"}, timeout=0.5)
    answers = []
    hung = threading.Thread(target=lambda: answers.append(
        lh.post("/v1/volumes", {"name": "vol-b", "size": "1Gi"}, timeout=30)))
    hung.start()
    wait_for(lambda: lh.get("/sandbox/faults").json()["faults"] == [], what="second call to take the fault")
    released = time.monotonic()
    lh.delete("/sandbox/faults")
    hung.join(timeout=10)
    assert not hung.is_alive() and time.monotonic() - released < 5
    assert answers[0].status_code == 500
    assert lh.get("/v1/volumes/vol-a").status_code == 404 and lh.get("/v1/volumes/vol-b").status_code == 404


def test_fail_async_backup_ends_in_error(lh):
    lh.ready_volume("vol-a")
    lh.action("volumes", "vol-a", "snapshotCRCreate", {"name": "snap-1"})
    add_fault(lh, action="snapshotBackup", mode="fail_async", message="s3: access denied")
    assert lh.action("volumes", "vol-a", "snapshotBackup", {"name": "snap-1"}).status_code == 200
    failed = lh.wait_volume("vol-a", lambda v: v["backupStatus"][0]["state"] == "Error")["backupStatus"][0]
    assert failed["error"] == "s3: access denied" and failed["backupURL"] == "" and 0 < failed["progress"] < 100
    lh.wait_volume("vol-a", lambda v: v["state"] == "detached")
    assert lh.volume("vol-a")["lastBackup"] == "" and lh.get("/v1/backupvolumes").json()["data"] == []


def test_fail_async_restore_faults_the_volume(lh):
    lh.ready_volume("src")
    url = lh.backup("src", "snap-1")["backupURL"]
    add_fault(lh, action="volume.create", mode="fail_async", message="restore: checksum mismatch")
    lh.create_volume("restored", fromBackup=url)
    volume = lh.wait_volume("restored", lambda v: v["conditions"]["Restore"]["reason"] == "RestoreFailure")
    assert volume["conditions"]["Restore"]["status"] == "False"
    assert volume["conditions"]["Restore"]["message"] == "restore: checksum mismatch"
    assert volume["robustness"] == "faulted" and volume["ready"] is False and volume["restoreRequired"] is True
    assert "salvage" not in volume["actions"] and "snapshotBackup" not in volume["actions"]


@pytest.mark.parametrize("fault, message", [
    ({"mode": "error"}, "action"),
    ({"action": "volumes.list", "mode": "explode"}, "mode"),
    ({"action": "volumes.list", "mode": "error", "count": -1}, "count"),
    ({"action": "volumes.list", "mode": "slow", "delay": "soon"}, "delay"),
])
def test_bad_faults_are_refused(lh, fault, message):
    response = lh.post("/sandbox/faults", fault)
    assert response.status_code == 400 and message in response.json()["error"]


def test_calls_are_counted_per_route_key(lh):
    lh.create_volume("vol-a")
    lh.delete("/sandbox/calls")
    lh.get("/v1/volumes")
    lh.get("/v1/volumes")
    lh.get("/v1/volumes/vol-a")
    lh.action("volumes", "vol-a", "snapshotCRCreate", {})
    lh.action("backupvolumes", "vol-a", "backupList")
    lh.get("/v1/backupvolumes")
    lh.get("/v1/nothing")
    lh.action("volumes", "vol-a", "bogus")
    lh.get("/sandbox/state")  # control calls are not counted
    assert lh.get("/sandbox/calls").json() == {"total": 8, "calls": {
        "backupList": 1, "backupvolumes.list": 1, "method_not_allowed": 1, "snapshotCRCreate": 1,
        "unmatched": 1, "volume.get": 1, "volumes.list": 2}, "in_flight": 0, "peak_concurrent": 1}
    assert lh.delete("/sandbox/calls").json() == {"total": 0, "calls": {}, "in_flight": 0, "peak_concurrent": 0}


def test_the_peak_number_of_calls_in_flight_is_recorded(lh):
    add_fault(lh, action="volumes.list", mode="timeout", count=0, delay=30)  # hang until cleared
    callers = [threading.Thread(target=lh.get, args=("/v1/volumes",)) for _ in range(3)]
    for caller in callers:
        caller.start()
    wait_for(lambda: lh.get("/sandbox/calls").json()["in_flight"] == 3, what="three calls in flight")
    lh.delete("/sandbox/faults")  # wakes them
    for caller in callers:
        caller.join(10)
    calls = lh.get("/sandbox/calls").json()
    assert calls["in_flight"] == 0 and calls["peak_concurrent"] == 3
    assert lh.delete("/sandbox/calls").json()["peak_concurrent"] == 0
    lh.get("/v1/volumes")
    assert lh.get("/sandbox/calls").json()["peak_concurrent"] == 1


def test_every_call_can_be_given_a_fixed_latency(lh):
    assert lh.post("/sandbox/config", {"call_delay_seconds": 0.3}).json()["call_delay_seconds"] == 0.3
    started = time.monotonic()
    assert lh.get("/v1/volumes").status_code == 200
    assert time.monotonic() - started >= 0.3
    assert lh.get("/sandbox/state").status_code == 200  # the control API is not delayed
    assert lh.post("/sandbox/config", {"call_delay_seconds": -1}).status_code == 400


def test_op_seconds_can_be_changed_at_runtime(lh):
    assert lh.post("/sandbox/config", {"op_seconds": 0.2}).json()["op_seconds"] == 0.2
    assert lh.get("/sandbox/config").json()["version"] == "1.7"
    assert lh.post("/sandbox/config", {"op_seconds": -1}).status_code == 400
    lh.ready_volume("vol-a")
    started = time.monotonic()
    lh.backup("vol-a", "snap-1")
    assert time.monotonic() - started < 3
