"""Issue 17: Soteria's processes killed (SIGKILL) in the middle of their work, on the sandbox
with real gunicorn and a real `manage.py qcluster`.

The Longhorn emulator's `timeout` fault holds one PVC's `snapshotBackup` call until the
faults are cleared (then answers an error without carrying it out), so the work is provably
in progress, at a known PVC, when the process is killed. After a restart, every due PVC gets
its backup, and none gets a second one.
"""

from __future__ import annotations

import os
import signal
import uuid

import pytest

from sandbox import faults, seed
from tests.support.http import http_json
from tests.support.kube import forget_policy_lease
from tests.support.polling import wait_for
from tests.support.reliability import FULL, size
from tests.support.soteria import Worker, gunicorn_workers, manage, start_soteria, stop_soteria, wait_workers

OLD = "2020-01-01T00:00:00Z"
COUNT = size(4, 12)
# The suite's time budget keeps the killed evaluation in `./dev test`; the other kills run
# under `./dev reliability` (docs/reliability.md).
FULL_ONLY = pytest.mark.skipif(not FULL, reason="full size only: ./dev reliability")


@pytest.fixture
def server(sandbox, tmp_path):
    """Soteria with one backup at a time (so the evaluation or batch stops at the held PVC)."""
    server = start_soteria(sandbox, tmp_path, workers=1, SOTERIA_NAMESPACE_CONCURRENCY=1,
                           SOTERIA_RESTORE_HEARTBEAT_SECONDS=1,
                           SOTERIA_POLICY_SECRET_NAME=f"soteria-policies-kills-{uuid.uuid4().hex[:8]}")
    yield server
    faults.clear(sandbox)
    faults.configure(sandbox, op_seconds=sandbox.longhorn_op_seconds, call_delay_seconds=0)
    stop_soteria(server)


def _pvcs(sandbox, namespace: str, count: int = COUNT) -> dict[str, str]:
    """`count` due Longhorn PVCs (a backup from 2020): {pvc: volume}."""
    volumes = {f"vol-{i:02d}": seed.make_pvc(sandbox, namespace, f"vol-{i:02d}", wait=False,
                                             backups=[{"state": "Completed", "created": OLD}])
               for i in range(count)}
    seed.wait_bound(sandbox, [(namespace, pvc) for pvc in volumes])
    faults.wait_mirrored(sandbox)
    return volumes


def _hold_backup_of(sandbox, volume: str) -> int:
    """Hold every snapshotBackup of `volume` until faults are cleared; the fault's id."""
    return faults.inject(sandbox, "snapshotBackup", mode="timeout", count=0, delay=600, target=volume)["id"]


def _held(sandbox, fault_id: int) -> bool:
    pending = faults._call(sandbox, "GET", "/sandbox/faults")["faults"]
    return any(f["id"] == fault_id and f["hits"] >= 1 for f in pending)


def _backups(server, namespace: str, pvc: str, **labels: str) -> list[dict]:
    status, body = http_json(f"{server.url}/v1/backups?namespace={namespace}&pvc={pvc}")
    assert status == 200, body
    return [b for b in body["backups"] if (b["created"] or "9") > OLD and all(b["labels"].get(k) == v
                                                                     for k, v in labels.items())]



def test_a_worker_killed_mid_evaluation_backs_up_each_due_pvc_once_after_restart(sandbox, server):
    namespace = "rel-kill-eval"
    volumes = _pvcs(sandbox, namespace)
    status, body = http_json(f"{server.url}/v1/policies", "POST", {"namespace": namespace, "interval_hours": 24})
    assert status == 201, body
    victim = sorted(volumes)[COUNT // 2]
    fault = _hold_backup_of(sandbox, volumes[victim])
    forget_policy_lease(sandbox)
    worker = Worker(server)
    try:
        manage(server, "from django_q.tasks import async_task; async_task('policies.tasks.evaluate_policies')")
        wait_for(lambda: _held(sandbox, fault), 180, f"the evaluation to reach {victim}", interval=0.3)
        os.killpg(worker.process.pid, signal.SIGKILL)  # the worker dies mid-evaluation
        worker.process.wait(timeout=10)
    finally:
        worker.stop()
    faults.clear(sandbox)  # the held call answers an error: the victim has no backup
    before = {pvc: [b["name"] for b in _backups(server, namespace, pvc, policy=namespace)] for pvc in volumes}
    assert before[victim] == []
    assert sum(1 for names in before.values() if names) < COUNT, before
    faults.wait_mirrored(sandbox)

    second = Worker(server)  # the same host: it holds the Lease the dead worker held
    try:
        report = second.run("policies.tasks.evaluate_policies", timeout=180)
        assert report["leader"] is True and report["failed"] == 0, report
        # Those the dead worker started are running (skipped) or done (not due); the rest start now.
        assert report["started"] == COUNT - sum(1 for names in before.values() if names), (report, before)
        wait_for(lambda: all(_backups(server, namespace, pvc, policy=namespace) and all(
            b["state"] == "Completed" for b in _backups(server, namespace, pvc, policy=namespace)) for pvc in volumes),
            180, "every PVC's policy backup", interval=0.5)
        for pvc in volumes:
            names = [b["name"] for b in _backups(server, namespace, pvc, policy=namespace)]
            assert len(names) == 1, (pvc, names)  # none forgotten, none twice
            assert not before[pvc] or names == before[pvc]
        faults.wait_mirrored(sandbox)
        again = second.run("policies.tasks.evaluate_policies", timeout=180)
        assert again["due"] == 0 and again["started"] == 0, again
    finally:
        second.stop()


@FULL_ONLY
def test_a_web_worker_killed_mid_namespace_batch_leaves_no_pvc_blocked_or_forgotten(sandbox, server):
    """POST /v1/backup/namespace runs in the web worker. Killed mid-batch, the caller's retry
    reaches every PVC at once: the PVC the dead worker was backing up is not held by its lock
    (taken over from the dead process, not waited out for 3 minutes), and each PVC the dead
    batch had not reached is backed up exactly once."""
    import threading

    namespace = "rel-kill-batch"
    volumes = _pvcs(sandbox, namespace)
    victim = sorted(volumes)[COUNT // 2]
    fault = _hold_backup_of(sandbox, volumes[victim])
    [pid] = wait_workers(server, 1)
    cut: list[OSError] = []

    def post_batch() -> None:
        try:
            http_json(f"{server.url}/v1/backup/namespace", "POST", {"namespace": namespace}, timeout=300)
        except OSError as exc:  # the worker answering it is killed
            cut.append(exc)
    batch = threading.Thread(target=post_batch, daemon=True)
    batch.start()
    wait_for(lambda: _held(sandbox, fault), 180, f"the batch to reach {victim}", interval=0.3)
    os.kill(pid, signal.SIGKILL)
    faults.clear(sandbox)  # the held call answers an error: the victim has no backup
    batch.join(timeout=60)
    assert cut, "the killed batch cannot have answered"
    wait_for(lambda: (w := gunicorn_workers(server)) and pid not in w and len(w) == 1, 60, "a new web worker")
    reached = {pvc for pvc in volumes if _backups(server, namespace, pvc)}
    assert victim not in reached and len(reached) < COUNT, reached

    status, retry = http_json(f"{server.url}/v1/backup/namespace", "POST", {"namespace": namespace}, timeout=300)
    assert status == 200, retry
    outcome = {r["pvc"]: r for r in retry["results"]}
    for pvc in volumes:
        if pvc in reached:  # asked twice; the first may still be running
            assert outcome[pvc]["status"] == "success" or outcome[pvc]["error"] == "backup_in_progress", outcome[pvc]
        else:
            assert outcome[pvc]["status"] == "success", outcome[pvc]
            listed = wait_for(lambda pvc=pvc: _backups(server, namespace, pvc), 60, f"the backup of {pvc}")
            assert [b["snapshot"] for b in listed] == [outcome[pvc]["backup"]], listed


def _restore_leases(cfg, purpose: str = "restore") -> list:
    from kubernetes import client, config

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(cfg.kubeconfig)))
    return api.list_namespaced_lease("soteria", label_selector=f"soteria.io/purpose={purpose}").items


def _emulator_volumes(cfg) -> int:
    return faults._call(cfg, "GET", "/sandbox/state")["volumes"]


@FULL_ONLY
def test_a_worker_killed_mid_restore_is_swept_and_its_batch_carried_on(sandbox, server):
    """A namespace restore runs in the worker: killed after Longhorn made the first PVC's new
    volume and before its claim. After a restart the restore sweep deletes that volume (and PV),
    then queues the rest of the batch again: every PVC ends restored exactly once."""
    from tests.support.kube import kube

    namespace, target = "rel-kill-restore", "rel-kill-restore-to"
    sources = _pvcs(sandbox, namespace, 3)
    seed.ensure_basics(sandbox, [target])
    api = kube(sandbox)
    worker = Worker(server)
    volumes_before = _emulator_volumes(sandbox)
    faults.set_call_delay(sandbox, 3)  # every Longhorn call takes 3 s: the restore is slow enough to catch
    try:
        status, body = http_json(f"{server.url}/v1/restores/namespace", "POST",
                                 {"namespace": namespace, "target_namespace": target}, timeout=300)
        assert status in (200, 202), body
        assert {r["status"] for r in body["results"]} == {"queued"}, body

        def volume_made_claim_not():
            leases = _restore_leases(sandbox)
            made = _emulator_volumes(sandbox) > volumes_before
            return leases if leases and made and not api.list_namespaced_persistent_volume_claim(target).items \
                else None
        [lease] = wait_for(volume_made_claim_not, 180, "the restore to have made its volume", interval=0.1)
        os.killpg(worker.process.pid, signal.SIGKILL)  # the worker dies mid-restore
        worker.process.wait(timeout=10)
    finally:
        worker.stop()
        faults.set_call_delay(sandbox, 0)
    made = lease.metadata.annotations
    volume, pv, claim = made["soteria.io/restore-volume"], made["soteria.io/restore-pv"], made["soteria.io/restore-target"]
    assert _emulator_volumes(sandbox) == volumes_before + 1
    assert not api.list_namespaced_persistent_volume_claim(target).items
    assert len(_restore_leases(sandbox, "restore-batch")) == 1  # the batch's record outlives its worker

    second = Worker(server)
    reports = []
    try:  # the restore sweep runs every minute; run it now (until the Leases have expired)
        def swept():
            reports.append(second.run("backups.tasks.sweep_restores"))
            return reports[-1].get("resumed")
        wait_for(swept, 120, "the restore sweep to queue the dead batch again", interval=1)

        def all_restored():
            claims = api.list_namespaced_persistent_volume_claim(target).items
            done = len(claims) == 3 and not _restore_leases(sandbox) and not _restore_leases(sandbox, "restore-batch")
            return claims if done else None
        claims = wait_for(all_restored, 240, "the batch to be carried on", interval=1)
    finally:
        second.stop()
    assert claim in [c for report in reports for c in report.get("interrupted", [])], reports
    # Each source restored once, each into a volume of its own; the dead run's volume and PV are gone.
    assert sorted(c.metadata.annotations["soteria.io/source"] for c in claims) == \
        sorted(f"{namespace}/{pvc}" for pvc in sources)
    assert _emulator_volumes(sandbox) == volumes_before + 3
    assert volume not in {c.spec.volume_name for c in claims}
    assert pv not in {p.metadata.name for p in api.list_persistent_volume().items}
    source = made["soteria.io/source"].partition("/")[2]
    events = [e for e in api.list_namespaced_event(namespace).items
              if e.involved_object.name == source and e.reason == "RestoreInterrupted"]
    assert events and claim in events[0].message and volume in events[0].message, events
