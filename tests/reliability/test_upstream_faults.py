"""The Longhorn manager fails, hangs or is slow at each call of a backup, a restore and the
backup listings (the emulator's faults, docs/sandbox-longhorn.md): Soteria answers 502
(Longhorn said no), 504 (Longhorn did not answer in time) or succeeds when a retried read
gets through, or shows the backup or restore as failed with Longhorn's reason when the
failure comes later. After every failure, nothing Soteria created is left behind: no
Longhorn volume, no PV or PVC labelled soteria.io/restored-from, no Job or Secret labelled
app.kubernetes.io/managed-by=soteria, no snapshot of Soteria's on the volume."""

from __future__ import annotations

import json
import urllib.request

import pytest

from sandbox import faults, seed
from tests.support.http import post
from tests.support.kube_faults import assert_nothing_left, soteria_objects
from tests.support.polling import wait_for
from tests.support.reliability import size

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 2.0  # SOTERIA_UPSTREAM_TIMEOUT_SECONDS here
HANG = 3 * TIMEOUT  # a hanging call answers (500) only after this, unless the test clears it first
SEEDED = [{"state": "Completed", "created": "2026-11-01T00:00:00Z", "size": "1048576", "snapshotName": "snap-0"}]
MESSAGE = "sandbox: backup target unreachable"


@pytest.fixture
def faulty(live, settings):
    settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS = TIMEOUT
    settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = 10
    yield live
    faults.clear(live)


def case_id(case) -> str:
    """`<route>-<mode>-<outcome>`, as a Kubernetes name."""
    return "-".join(str(part) for part in (case[0], case[1], case[3])).lower().replace(".", "-").replace("_", "-")


def own_snapshots(cfg, volume: str) -> list[str]:
    request = urllib.request.Request(f"{cfg.longhorn_url}/v1/volumes/{volume}?action=snapshotCRList", data=b"{}",
                                     method="POST", headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return sorted(s["name"] for s in json.loads(response.read())["data"] if s["name"].startswith("soteria-"))


def backup_states(client, namespace: str, pvc: str) -> list[dict]:
    response = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}")
    assert response.status_code == 200, response.content
    return response.json()["backups"]


# --- Backups ---------------------------------------------------------------------------------------
# (route key, mode, delay, what Soteria answers: a status, or "Error" for a backup that starts
# and then fails, or "Completed" when a retried read gets through)
BACKUP_CASES = size(
    ci=[("snapshotCRCreate", "error", None, 502), ("snapshotBackup", "error", None, 502),
        ("snapshotBackup", "timeout", HANG, 504), ("snapshotCRGet", "timeout", HANG, "Completed"),
        ("snapshotBackup", "fail_async", None, "Error")],
    full=[("volume.get", "error", None, 502), ("volume.get", "timeout", HANG, "Completed"),
          ("snapshotCRList", "error", None, "Completed"),
          ("snapshotCRCreate", "error", None, 502), ("snapshotCRCreate", "timeout", HANG, 504),
          ("snapshotCRGet", "error", None, 502), ("snapshotCRGet", "timeout", HANG, "Completed"),
          ("snapshotBackup", "error", None, 502), ("snapshotBackup", "timeout", HANG, 504),
          ("snapshotBackup", "slow", TIMEOUT / 2, "Completed"), ("snapshotBackup", "fail_async", None, "Error"),
          ("snapshotBackup", "unknown_async", None, "Unknown")])


@pytest.mark.parametrize("case", BACKUP_CASES, ids=case_id)
def test_a_backup_under_a_longhorn_fault_answers_clearly_and_leaves_nothing(client, faulty, case):
    key, mode, delay, expected = case
    namespace, pvc = "rf-backup", case_id(case)
    volume = seed.make_pvc(faulty, namespace, pvc, files={"a.txt": "a\n"})
    before = soteria_objects(faulty)
    faults.inject(faulty, key, mode=mode, delay=delay or 0, message=MESSAGE, target=volume)
    response = post(client, "/v1/backup", {"namespace": namespace, "pvc": pvc})
    if isinstance(expected, int):
        assert response.status_code == expected, response.content
        body = response.json()
        assert body["error"] == {502: "longhorn_error", 504: "longhorn_timeout"}[expected]
        if expected == 502:
            assert MESSAGE in body["detail"]
        faults.clear(faulty)  # what hangs answers now
        assert_nothing_left(faulty, before)
        assert backup_states(client, namespace, pvc) == []
        # A refused call leaves no snapshot of Soteria's; after a call that timed out, a backup
        # may have started, so its snapshot stays until a later backup prunes it.
        if expected == 502:
            assert own_snapshots(faulty, volume) == []
        return
    assert response.status_code == 200, response.content
    name = response.json()["backup"]

    def ended():
        return next((b for b in backup_states(client, namespace, pvc)
                     if b["snapshot"] == name and b["state"] in ("Completed", "Error", "Unknown")), None)

    record = wait_for(ended, 60, f"backup {name} to end")
    assert record["state"] == expected, record
    if expected != "Completed":
        assert MESSAGE in record["error"]
        faults.wait_mirrored(faulty)
        row = next(p for ns in client.get(f"/v1/inventory?namespace={namespace}").json()["namespaces"]
                   for p in ns["pvcs"] if p["pvc"] == pvc)
        assert row["healthy"] is False and row["health_reason"] == "last backup failed"


# --- Restores ----------------------------------------------------------------------------------------
RESTORE_CASES = size(
    ci=[("volume.create", "timeout", HANG, 504), ("volume.create", "slow", 1.5 * TIMEOUT, 504),
        ("backupList", "error", None, 502), ("volume.create", "fail_async", None, "failed")],
    full=[("volume.get", "error", None, 502), ("backupvolumes.list", "error", None, 502),
          ("backupvolumes.list", "timeout", HANG, 200), ("backupList", "error", None, 502),
          ("backupList", "timeout", HANG, 200), ("volume.create", "error", None, 502),
          ("volume.create", "timeout", HANG, 504), ("volume.create", "slow", 1.5 * TIMEOUT, 504),
          ("volume.create", "slow", TIMEOUT / 2, 200), ("volume.create", "fail_async", None, "failed")])


@pytest.mark.parametrize("case", RESTORE_CASES, ids=case_id)
def test_a_restore_under_a_longhorn_fault_answers_clearly_and_cleans_up(client, faulty, case):
    key, mode, delay, expected = case
    namespace, pvc = "rf-restore", case_id(case)
    seed.make_pvc(faulty, namespace, pvc, files={"a.txt": "a\n"}, backups=SEEDED)
    before = soteria_objects(faulty)
    faults.inject(faulty, key, mode=mode, delay=delay or 0, message=MESSAGE)
    response = post(client, "/v1/restores", {"namespace": namespace, "pvc": pvc, "target_pvc": f"{pvc}-r"})
    if isinstance(expected, int) and expected != 200:
        assert response.status_code == expected, response.content
        body = response.json()
        assert body["error"] == {502: "longhorn_error", 504: "longhorn_timeout"}[expected]
        if expected == 502:
            assert MESSAGE in body["detail"]
        faults.clear(faulty)
        assert_nothing_left(faulty, before)
        return
    assert response.status_code == 200, response.content
    body = response.json()

    def ended():
        rows = client.get(f"/v1/restores?namespace={namespace}").json()["restores"]
        return next((r for r in rows if r["pvc"] == f"{pvc}-r" and r["state"] in ("done", "failed")), None)

    row = wait_for(ended, 60, "the restore to end")
    if expected == 200:
        assert row["state"] == "done", row
        return
    # Longhorn took the volume and failed restoring it later: the restore is listed as failed
    # with Longhorn's reason, and what it made is exactly the volume, PV and PVC it names.
    assert row["state"] == expected and MESSAGE in row["detail"], row
    made = {("volume", body["volume"]), ("pv", body["volume"]), ("pvc", f"{namespace}/{pvc}-r")}
    assert soteria_objects(faulty) - before == made


# --- Listings ------------------------------------------------------------------------------------------
LISTING_CASES = size(ci=[("backupList", "error", None, 502), ("volumes.list", "error", None, 502)],
                     full=[("volume.get", "error", None, 502), ("backupvolumes.list", "error", None, 502),
                           ("backupList", "error", None, 502), ("backupList", "timeout", HANG, 504),
                           ("volumes.list", "error", None, 502), ("volumes.list", "timeout", HANG, 504)])


@pytest.mark.parametrize("case", LISTING_CASES, ids=case_id)
def test_listings_under_a_longhorn_fault_answer_clearly(client, faulty, case):
    """GET /v1/backups (volume.get, backupvolumes.list, backupList) and GET /v1/restores
    (volumes.list); a fault on every call (count 0), since reads are retried."""
    key, mode, delay, expected = case
    namespace = "rf-listing"
    pvc = case_id(case)
    seed.make_pvc(faulty, namespace, pvc, backups=SEEDED)
    restored = post(client, "/v1/restores", {"namespace": namespace, "pvc": pvc, "target_pvc": f"{pvc}-r"})
    assert restored.status_code == 200, restored.content
    faults.inject(faulty, key, mode=mode, delay=delay or 0, message=MESSAGE, count=0)
    path = f"/v1/restores?namespace={namespace}" if key == "volumes.list" else \
        f"/v1/backups?namespace={namespace}&pvc={pvc}"
    response = client.get(path)
    assert response.status_code == expected, response.content
    assert response.json()["error"] == {502: "longhorn_error", 504: "longhorn_timeout"}[expected]
    faults.clear(faulty)
    assert client.get(path).status_code == 200
