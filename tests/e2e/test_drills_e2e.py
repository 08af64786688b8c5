"""Issue 15 end to end: restore drills of Longhorn and restic PVCs on the sandbox.

A drill restores the newest backup into a scratch claim, reads it with a verification Job
(the kubelet stand-in runs it with the host's python3), and compares it with the manifest
recorded at backup time. In-process drills run `drills.run` in a thread, as the worker would;
the interruption test kills a real `manage.py qcluster` and lets the sweeper clean up.
"""

from __future__ import annotations

import os
import signal
import threading
import uuid
from datetime import datetime, timedelta

import pytest

from backups import tasks
from backups.drivers import manifest_jobs
from backups.services import drills, inventory_cache
from sandbox import seed
from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for
from tests.support.restic import local_pvc

pytestmark = pytest.mark.django_db(transaction=True)
DRILL_SECONDS = 180
FILES = {"README.txt": "drill me\n", "data/rows.csv": "id,v\n" + "".join(f"{i},{i * i}\n" for i in range(800)),
         "deep/a/b/c.txt": "nested\n", "empty": ""}


@pytest.fixture
def drills_live(live, settings, monkeypatch):
    """Soteria on the sandbox (auto driver: Longhorn and restic), drills run in a thread."""
    settings.SOTERIA_BACKUP_DRIVER = "auto"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{live.s3_endpoint}/e2e-drills-{uuid.uuid4().hex[:10]}/repo"
    settings.SOTERIA_JOB_TTL_SECONDS = 3600
    settings.SOTERIA_DRILL_NAMESPACE = "soteria"
    settings.SOTERIA_DRILL_HEARTBEAT_SECONDS = 1
    settings.SOTERIA_DRILL_TIMEOUT_SECONDS = DRILL_SECONDS
    # The files are written moments before each backup: no clock margin, or they would all
    # count as changed around the backup's point in time (docs/drills.md).
    monkeypatch.setattr(manifest_jobs, "CLOCK_MARGIN", timedelta(0))
    threads: list[threading.Thread] = []

    def in_a_thread(p):
        thread = threading.Thread(target=tasks.run_drill, args=(p.id, p.namespace, p.pvc), daemon=True)
        thread.start()
        threads.append(thread)
    monkeypatch.setattr(drills, "_enqueue", in_a_thread)
    yield live
    for thread in threads:
        thread.join(timeout=DRILL_SECONDS)


def _backed_up(client, namespace, pvc) -> dict:
    response = post(client, "/v1/backup", {"namespace": namespace, "pvc": pvc})
    assert response.status_code == 200, response.content
    started = response.json()["backup"]

    def completed():
        listed = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}").json()["backups"]
        if any(b["name"] == started and b["state"] != "Completed" for b in listed):
            return None  # a restic Job still running
        return next((b for b in listed if b["state"] == "Completed"
                     and started in (b["snapshot"], b["labels"].get("soteria.io/job"))), None)
    return wait_for(completed, DRILL_SECONDS, what=f"backup {started} of {namespace}/{pvc}", interval=0.5)


def _drilled(client, namespace, pvc) -> dict:
    response = post(client, "/v1/restore-drills", {"namespace": namespace, "pvc": pvc})
    assert response.status_code == 202, response.content
    drill_id = response.json()["id"]

    def finished():
        rows = client.get(f"/v1/restore-drills?namespace={namespace}&pvc={pvc}").json()["drills"]
        row = next(r for r in rows if r["id"] == drill_id)
        return row if row["result"] != "running" else None
    return wait_for(finished, DRILL_SECONDS, what=f"drill {drill_id} of {namespace}/{pvc}", interval=0.5)


def _leftovers(cfg, drill_id: str) -> list[str]:
    """Everything labelled with the drill, and the scratch volumes Longhorn still has."""
    from backups.clients import longhorn

    core, selector = kube(cfg), f"soteria.io/drill={drill_id}"
    from kubernetes import client as k8s
    from kubernetes import config as k8s_config
    batch = k8s.BatchV1Api(k8s_config.new_client_from_config(config_file=str(cfg.kubeconfig)))
    found = [f"pvc {p.metadata.name}" for p in core.list_persistent_volume_claim_for_all_namespaces(
        label_selector=selector).items]
    found += [f"pv {p.metadata.name}" for p in core.list_persistent_volume(label_selector=selector).items]
    found += [f"job {j.metadata.name}" for j in batch.list_job_for_all_namespaces(label_selector=selector).items]
    found += [f"secret {s.metadata.name}" for s in core.list_secret_for_all_namespaces(label_selector=selector).items]
    record = drills.drill_records.load_all()
    volumes = {v.name for v in longhorn.list_volumes()}
    for rec in record.values():
        for drill in rec.drills:
            if drill["id"] == drill_id and drill.get("scratch", {}).get("volume") in volumes:
                found.append(f"volume {drill['scratch']['volume']}")
    return found


def _sample(client, name: str, **labels: str) -> float:
    """The value of one series of /metrics (0 when absent)."""
    from prometheus_client.parser import text_string_to_metric_families

    for family in text_string_to_metric_families(client.get("/metrics").content.decode()):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return sample.value
    return 0.0


def _row(client, namespace, pvc) -> dict:
    body = client.get(f"/v1/inventory?namespace={namespace}").json()
    return next(p for ns in body["namespaces"] for p in ns["pvcs"] if p["pvc"] == pvc)


def test_a_longhorn_drill_of_a_healthy_backup_passes_and_leaves_nothing(client, drills_live):
    seed.make_pvc(drills_live, "e2e-drill", "healthy", files=FILES)
    backup = _backed_up(client, "e2e-drill", "healthy")
    assert inventory_cache.refresh() is not None  # /metrics' rows, before the drill
    passed_before = _sample(client, "soteria_restore_drills_total", driver="longhorn", result="passed")
    drill = _drilled(client, "e2e-drill", "healthy")
    assert drill["result"] == "passed", drill
    assert drill["backup"] == backup["name"] and drill["driver"] == "longhorn"
    assert drill["restored"]["files"] == len(FILES) == drill["source"]["files"]
    assert drill["restored"]["bytes"] == sum(len(v.encode()) for v in FILES.values()) == drill["source"]["bytes"]
    assert drill["cleanup"]["succeeded"] is True
    assert _leftovers(drills_live, drill["id"]) == []
    row = _row(client, "e2e-drill", "healthy")
    assert row["verify_result"] == "passed" and row["last_verified_at"] == drill["finished_at"]
    reasons = {e.reason for e in kube(drills_live).list_namespaced_event("e2e-drill").items
               if e.involved_object.name == "healthy"}
    assert "RestoreDrillPassed" in reasons
    # /metrics shows it at once, without waiting for the next inventory refresh.
    labels = {"namespace": "e2e-drill", "pvc": "healthy", "volume": row["volume"], "driver": "longhorn"}
    verified = _sample(client, "pvc_restore_verified_timestamp_seconds", **labels)
    assert verified == datetime.fromisoformat(drill["finished_at"].replace("Z", "+00:00")).timestamp()
    assert _sample(client, "pvc_restore_verify_failed", **labels) == 0
    assert _sample(client, "soteria_restore_drills_total", driver="longhorn", result="passed") == passed_before + 1


def test_a_longhorn_drill_of_a_corrupted_backup_fails_and_names_the_files(client, drills_live):
    seed.make_pvc(drills_live, "e2e-drill", "rotten", files=FILES)
    backup = _backed_up(client, "e2e-drill", "rotten")
    stored = [p for p in (drills_live.state_dir / "longhorn").rglob("rows.csv") if backup["name"] in str(p)]
    assert stored, "the emulator's copy of the backup"
    stored[0].write_text("id,v\n0,tampered\n")
    drill = _drilled(client, "e2e-drill", "rotten")
    assert drill["result"] == "failed", drill
    assert any(d.startswith("data/rows.csv:") for d in drill["differences"]), drill["differences"]
    assert _leftovers(drills_live, drill["id"]) == []
    row = _row(client, "e2e-drill", "rotten")
    assert row["verify_result"] == "failed" and row["last_verified_at"] is None
    assert inventory_cache.refresh() is not None
    labels = {"namespace": "e2e-drill", "pvc": "rotten", "volume": row["volume"], "driver": "longhorn"}
    assert _sample(client, "pvc_restore_verify_failed", **labels) == 1


def test_a_restic_drill_passes_and_a_corrupted_repository_fails_naming_the_files(client, drills_live):
    local_pvc(drills_live, "e2e-drill-r", "files")
    _backed_up(client, "e2e-drill-r", "files")
    drill = _drilled(client, "e2e-drill-r", "files")
    assert drill["result"] == "passed", drill
    assert drill["driver"] == "restic" and drill["restored"]["files"] == drill["source"]["files"] > 0
    assert _leftovers(drills_live, drill["id"]) == []
    # The provisioned PV (reclaim Delete) is the provisioner's to remove.
    wait_for(lambda: not [pv for pv in kube(drills_live).list_persistent_volume().items if pv.spec.claim_ref
                          and pv.spec.claim_ref.name == drill["scratch"]["pvc"]], 60,
             what="the scratch claim's provisioned PV to go")

    from backups.drivers import restic_jobs
    from tests.support.restic import corrupt_data_packs
    assert corrupt_data_packs(restic_jobs.repository(), restic_jobs.credentials().env())
    bad = _drilled(client, "e2e-drill-r", "files")
    assert bad["result"] == "failed", bad
    assert "restore failed" in bad["reason"]
    assert any("README.txt" in d for d in bad["differences"]), bad["differences"]
    assert _leftovers(drills_live, bad["id"]) == []


def _source(cfg, driver: str, namespace: str, pvc: str) -> None:
    """A PVC with files that the auto driver backs up with `driver`."""
    if driver == "longhorn":
        seed.make_pvc(cfg, namespace, pvc, files=FILES)
    else:
        local_pvc(cfg, namespace, pvc)


@pytest.mark.parametrize("driver", ["longhorn", "restic"])
def test_two_drills_of_one_pvc_never_run_at_once(client, drills_live, driver):
    _source(drills_live, driver, f"e2e-drill-1-{driver}", "once")
    _backed_up(client, f"e2e-drill-1-{driver}", "once")
    first = post(client, "/v1/restore-drills", {"namespace": f"e2e-drill-1-{driver}", "pvc": "once"})
    second = post(client, "/v1/restore-drills", {"namespace": f"e2e-drill-1-{driver}", "pvc": "once"})
    assert first.status_code == 202, first.content
    assert first.json()["driver"] == driver
    assert second.status_code == 409 and second.json()["error"] == "drill_in_progress", second.content
    assert second.json()["running"] == first.json()["id"]


@pytest.mark.parametrize("driver", ["longhorn", "restic"])
def test_a_drill_whose_worker_is_killed_is_swept(live, tmp_path, driver):
    """The real web server and worker: kill the worker mid-drill, then the sweeper cleans up."""
    import requests

    from tests.support.soteria import Worker, start_soteria, stop_soteria

    namespace = f"e2e-drill-k-{driver}"
    _source(live, driver, namespace, "killed")
    server = start_soteria(live, tmp_path, workers=1, SOTERIA_DRILL_HEARTBEAT_SECONDS=1,
                           SOTERIA_DRILL_NAMESPACE="soteria", SOTERIA_BACKUP_DRIVER="auto",
                           SOTERIA_RESTIC_REPOSITORY=f"s3:{live.s3_endpoint}/e2e-drill-k-{uuid.uuid4().hex[:10]}/repo")
    worker = Worker(server)
    session = requests.Session()

    def drills_of_pvc() -> list[dict]:
        return session.get(f"{server.url}/v1/restore-drills?namespace={namespace}&pvc=killed", timeout=30).json()[
            "drills"]
    try:
        answer = session.post(f"{server.url}/v1/backup", json={"namespace": namespace, "pvc": "killed"}, timeout=60)
        assert answer.status_code == 200, answer.text
        wait_for(lambda: any(b["state"] == "Completed" for b in session.get(
            f"{server.url}/v1/backups?namespace={namespace}&pvc=killed", timeout=30).json()["backups"]),
            DRILL_SECONDS, what="backup", interval=0.5)
        started = session.post(f"{server.url}/v1/restore-drills", json={"namespace": namespace, "pvc": "killed"},
                               timeout=60)
        assert started.status_code == 202, started.text
        assert started.json()["driver"] == driver
        drill_id, scratch = started.json()["id"], started.json()["scratch_pvc"]
        selector = f"soteria.io/drill={drill_id}"
        wait_for(lambda: kube(live).list_namespaced_persistent_volume_claim("soteria", label_selector=selector).items,
                 DRILL_SECONDS, what="the drill's scratch claim", interval=0.2)
        os.killpg(worker.process.pid, signal.SIGKILL)  # the worker dies mid-drill
        worker.process.wait(timeout=10)
        assert drills_of_pvc()[0]["result"] == "running"

        second = Worker(server)
        try:
            def swept():
                out = second.run("backups.tasks.sweep_drills")
                return out if drill_id in out["interrupted"] else None
            wait_for(swept, 60, what="the sweeper to find the dead drill", interval=1)
        finally:
            second.stop()
        drill = drills_of_pvc()[0]
        assert drill["result"] == "error" and "interrupted" in drill["reason"], drill
        assert drill["cleanup"]["succeeded"] is True
        assert f"pvc soteria/{scratch}" in drill["cleanup"]["deleted"], drill["cleanup"]
        if driver == "longhorn":
            assert f"volume {drill['scratch']['volume']}" in drill["cleanup"]["deleted"]
        else:
            assert f"job soteria/{drill['scratch']['job']}" in drill["cleanup"]["deleted"]
        # (a restic restore Job's copied Secret goes with the Job, by the garbage collector)
        wait_for(lambda: _leftovers(live, drill_id) == [], 60, what="nothing of the drill left")
        # The dead drill's Leases were freed: the next drill of the PVC may start at once.
        from soteria_site.core import kubernetes
        assert kubernetes.find_lease("soteria", drills.lease_name(namespace, "killed")) is None
    finally:
        worker.stop()
        stop_soteria(server)
