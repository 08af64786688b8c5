"""restic Jobs that fail: their S3 hangs past the Job's deadline, their pod is deleted mid-run,
or the repository cannot be opened. The backup is listed as failed with the reason, the
inventory says so, and nothing runs on or is left without its Job: no pod still running, no
Secret copy whose Job is gone.

The repository is reached through a TCP fault proxy (sandbox/fault_proxy.py), from Soteria's
process and from the Job's pod alike (the kubelet stand-in runs pods on the host's network)."""

from __future__ import annotations

import uuid

import pytest

from sandbox import s3 as s3_server
from sandbox.fault_proxy import TcpFaultProxy
from tests.support.http import post
from tests.support.kube import kube
from tests.support.kube_faults import batch, soteria_objects
from tests.support.polling import wait_for
from tests.support.reliability import size
from tests.support.restic import local_pvc

pytestmark = pytest.mark.django_db(transaction=True)
DEADLINE = 10  # the Jobs' activeDeadlineSeconds here
NAMESPACE = "rf-restic"


@pytest.fixture
def s3(live, settings):
    """The restic driver on a repository of the test's own, through a TCP fault proxy."""
    proxy = TcpFaultProxy(("127.0.0.1", live.port("s3")))
    proxy.bucket = f"rf-{uuid.uuid4().hex[:10]}"
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_S3_ENDPOINT = f"http://{proxy.address}"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:http://{proxy.address}/{proxy.bucket}/repo"
    settings.SOTERIA_JOB_ACTIVE_DEADLINE_SECONDS = DEADLINE
    settings.SOTERIA_RESTIC_TIMEOUT_SECONDS = 20
    yield proxy
    proxy.close()


def failed_record(client, pvc: str, job: str, timeout: float = 90) -> dict:
    def failed():
        response = client.get(f"/v1/backups?namespace={NAMESPACE}&pvc={pvc}")
        assert response.status_code == 200, response.content
        return next((b for b in response.json()["backups"] if b["name"] == job and b["state"] == "Error"), None)

    return wait_for(failed, timeout, f"backup Job {job} to be listed as failed", interval=0.5)


def running_pods(cfg, job: str) -> list[str]:
    return [p.metadata.name for p in kube(cfg).list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job}").items
            if p.status.phase in ("Pending", "Running")]


def assert_no_orphans(cfg, job: str) -> None:
    """The failed Job is the record of the failure; nothing of it runs, and every Secret copy
    Soteria made has its Job."""
    wait_for(lambda: not running_pods(cfg, job), 60, f"the pods of Job {job} to stop")
    objects = soteria_objects(cfg)
    jobs = {name for kind, name in objects if kind == "job"}
    assert {name for kind, name in objects if kind == "secret"} <= jobs
    [state] = [j.status for j in batch(cfg).list_namespaced_job(NAMESPACE).items if j.metadata.name == job]
    assert not state.active, state


def started(client, cfg, settings, s3: TcpFaultProxy, pvc: str) -> str:
    """A backup Job whose pod reaches S3 through the proxy, now hanging every new connection;
    Soteria's own process reaches the same repository directly from then on."""
    local_pvc(cfg, NAMESPACE, pvc)
    response = post(client, "/v1/backup", {"namespace": NAMESPACE, "pvc": pvc})
    assert response.status_code == 200, response.content
    s3.set_mode("hang")
    settings.SOTERIA_S3_ENDPOINT = cfg.s3_endpoint
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:{cfg.s3_endpoint}/{s3.bucket}/repo"
    return response.json()["backup"]


def test_a_job_whose_repository_hangs_fails_at_its_deadline_and_says_so(client, live, settings, s3):
    job = started(client, live, settings, s3, "hangs")
    record = failed_record(client, "hangs", job)
    assert "DeadlineExceeded" in record["error"] or "deadline" in record["error"], record
    print(f"\nrestic Job past its deadline, listed as: {record['error']}")
    s3.set_mode("forward")
    assert_no_orphans(live, job)
    row = next(p for ns in client.get(f"/v1/inventory?namespace={NAMESPACE}").json()["namespaces"]
               for p in ns["pvcs"] if p["pvc"] == "hangs")
    assert row["healthy"] is False and row["health_reason"] == "last backup failed", row


def test_a_job_whose_pod_is_deleted_mid_run_is_failed_with_the_reason(client, live, settings, s3):
    job = started(client, live, settings, s3, "deleted")
    core = kube(live)

    def running():
        for pod in core.list_namespaced_pod(NAMESPACE, label_selector=f"job-name={job}").items:
            statuses = (pod.status.init_container_statuses or []) + (pod.status.container_statuses or [])
            if any(s.state.running for s in statuses):
                return pod.metadata.name
        return None

    pod = wait_for(running, 60, f"a container of Job {job} to run")
    core.delete_namespaced_pod(pod, NAMESPACE)
    record = failed_record(client, "deleted", job)
    assert record["error"], record
    print(f"\nrestic Job whose pod was deleted, listed as: {record['error']}")
    s3.set_mode("forward")
    assert_no_orphans(live, job)


REPOSITORY_FAULTS = size(ci=["wrong_password"], full=["wrong_password", "refused"])


@pytest.mark.parametrize("fault", REPOSITORY_FAULTS)
def test_a_repository_soteria_cannot_open_is_refused_before_any_job(client, live, s3, settings, fault):
    local_pvc(live, NAMESPACE, f"repo-{fault.replace('_', '-')}")
    before = soteria_objects(live)
    if fault == "wrong_password":
        from backups.drivers import restic, restic_jobs

        restic.ensure_repository(restic_jobs.credentials())  # the repository exists
        kube(live).create_namespaced_secret("soteria", {"metadata": {"name": "rf-restic-wrong"}, "stringData": {
            "AWS_ACCESS_KEY_ID": s3_server.ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": s3_server.SECRET_ACCESS_KEY,
            "RESTIC_PASSWORD": "not the password"}})
        settings.SOTERIA_RESTIC_SECRET_NAME = "rf-restic-wrong"
        from django.core.cache import cache
        cache.clear()  # Soteria remembers a repository it has seen; this one it must open again
        expected, code = 502, "restic_error"
    else:
        s3.pause()
        expected, code = 503, "restic_unavailable"
    response = post(client, "/v1/backup", {"namespace": NAMESPACE, "pvc": f"repo-{fault.replace('_', '-')}"})
    assert response.status_code == expected and response.json()["error"] == code, response.content
    assert soteria_objects(live) == before
