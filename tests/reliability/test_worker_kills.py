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
from tests.support.polling import wait_for
from tests.support.reliability import size
from tests.support.soteria import Worker, gunicorn_workers, manage, start_soteria, stop_soteria, wait_workers

OLD = "2020-01-01T00:00:00Z"
COUNT = size(4, 12)


@pytest.fixture
def server(sandbox, tmp_path):
    """Soteria with one backup at a time (so the evaluation or batch stops at the held PVC)."""
    server = start_soteria(sandbox, tmp_path, workers=1, SOTERIA_NAMESPACE_CONCURRENCY=1,
                           SOTERIA_POLICY_SECRET_NAME=f"soteria-policies-kills-{uuid.uuid4().hex[:8]}")
    yield server
    faults.clear(sandbox)
    faults.set_op_seconds(sandbox, sandbox.longhorn_op_seconds)
    stop_soteria(server)


def _pvcs(sandbox, namespace: str) -> dict[str, str]:
    """COUNT due Longhorn PVCs (a backup from 2020): {pvc: volume}."""
    volumes = {f"vol-{i:02d}": seed.make_pvc(sandbox, namespace, f"vol-{i:02d}", wait=False,
                                             backups=[{"state": "Completed", "created": OLD}])
               for i in range(COUNT)}
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


def _forget_lease(cfg) -> None:
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(cfg.kubeconfig)))
    try:
        api.delete_namespaced_lease("soteria-policy-evaluator", "soteria")
    except ApiException as exc:
        if exc.status != 404:
            raise


def test_a_worker_killed_mid_evaluation_backs_up_each_due_pvc_once_after_restart(sandbox, server):
    namespace = "rel-kill-eval"
    volumes = _pvcs(sandbox, namespace)
    status, body = http_json(f"{server.url}/v1/policies", "POST", {"namespace": namespace, "interval_hours": 24})
    assert status == 201, body
    victim = sorted(volumes)[COUNT // 2]
    fault = _hold_backup_of(sandbox, volumes[victim])
    _forget_lease(sandbox)
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


def test_a_web_worker_killed_mid_namespace_batch_loses_no_pvc_and_doubles_none(sandbox, server):
    """POST /v1/backup/namespace runs in the web worker: killed mid-batch, the caller's retry
    backs up the PVCs the dead batch had not reached, and refuses (409) the ones it started."""
    import threading

    namespace = "rel-kill-batch"
    volumes = _pvcs(sandbox, namespace)
    faults.set_op_seconds(sandbox, 600)  # the batch's backups are still running at the retry
    victim = sorted(volumes)[COUNT // 2]
    fault = _hold_backup_of(sandbox, volumes[victim])
    [pid] = wait_workers(server, 1)
    answers = []
    batch = threading.Thread(target=lambda: answers.append(http_json(
        f"{server.url}/v1/backup/namespace", "POST", {"namespace": namespace}, timeout=300)), daemon=True)
    batch.start()
    wait_for(lambda: _held(sandbox, fault), 180, f"the batch to reach {victim}", interval=0.3)
    os.kill(pid, signal.SIGKILL)
    faults.clear(sandbox)
    batch.join(timeout=60)
    assert not answers or answers[0][0] != 200, "the killed batch cannot have answered"
    wait_for(lambda: (w := gunicorn_workers(server)) and pid not in w and len(w) == 1, 60, "a new web worker")
    started = {pvc for pvc in volumes if _backups(server, namespace, pvc)}
    assert victim not in started and 0 < len(started) < COUNT, started

    status, retry = http_json(f"{server.url}/v1/backup/namespace", "POST", {"namespace": namespace}, timeout=300)
    assert status == 200, retry
    outcome = {r["pvc"]: r for r in retry["results"]}
    for pvc in volumes:
        if pvc in started:
            assert outcome[pvc]["status"] == "failed" and outcome[pvc]["error"] == "backup_in_progress", outcome[pvc]
        else:
            assert outcome[pvc]["status"] == "success", outcome[pvc]
        assert len(_backups(server, namespace, pvc)) == 1, (pvc, _backups(server, namespace, pvc))
