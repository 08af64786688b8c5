"""The Jobs that take a claim's manifest at backup time: restic's backup Job and Longhorn's own
manifest Job, as Kubernetes will see them, and what the drivers do with them."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backups.drivers import manifest_jobs, restic_jobs
from backups.drivers import restic as restic_driver
from backups.manifests import reader_source
from backups.services import backup, claims
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamError
from soteria_site.core.kubernetes import Secret
from soteria_site.core.workloads import ContainerEnd, Job, Pod
from tests.support.fake_cluster import NOW

RESTRICTED = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
              "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
SINCE = "1776007770.000"  # NOW minus the 30 s clock margin, in epoch seconds


@pytest.fixture(autouse=True)
def _job_settings(settings):
    settings.SOTERIA_DRILL_IMAGE = "python:3.12-alpine"
    settings.SOTERIA_DRILL_SAMPLE_FILES = 32
    settings.SOTERIA_JOB_TTL_SECONDS = 600
    settings.SOTERIA_JOB_NODE_SELECTOR = {}
    settings.SOTERIA_JOB_SERVICE_ACCOUNT = ""
    settings.SOTERIA_JOB_RUN_AS_USER = settings.SOTERIA_JOB_RUN_AS_GROUP = 65532
    settings.SOTERIA_RESTIC_FORGET_ARGS = []
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:https://s3.example.com/bucket/soteria"


def test_the_margin_is_thirty_seconds_before_the_point_in_time():
    assert manifest_jobs.CLOCK_MARGIN == timedelta(seconds=30)
    assert manifest_jobs.since(NOW) == NOW - timedelta(seconds=30)
    assert f"{manifest_jobs.since(NOW).timestamp():.3f}" == SINCE


def test_a_manifest_job_reads_the_claim_read_only_under_the_restricted_profile():
    body = manifest_jobs.job("soteria-manifest-data-20260412-153000", "ai", "data.primary", "longhorn",
                             "soteria-backup-ai-data-20260412-153000", manifest_jobs.since(NOW), "brad", node="n-2")
    meta, spec = body["metadata"], body["spec"]
    pod = spec["template"]["spec"]
    assert meta["labels"] == {"app.kubernetes.io/managed-by": "soteria", "soteria.io/driver": "longhorn",
                              "soteria.io/operation": "manifest", "soteria.io/pvc": "data.primary"}
    assert spec["template"]["metadata"]["labels"] == meta["labels"]  # its pods are listed by them too
    assert meta["annotations"] == {"soteria.io/pvc": "data.primary", "soteria.io/requested-by": "brad",
                                   "soteria.io/manifest-key": "soteria-backup-ai-data-20260412-153000"}
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 600
    assert pod["restartPolicy"] == "Never" and pod["initContainers"] == []
    assert pod["volumes"] == [{"name": "data", "persistentVolumeClaim": {"claimName": "data.primary",
                                                                         "readOnly": True}}]
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["automountServiceAccountToken"] is False
    [container] = pod["containers"]
    assert container["name"] == "manifest" and container["image"] == "python:3.12-alpine"
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert container["securityContext"] == RESTRICTED
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert container["command"] == ["python3", "-c", reader_source(), "/data", "--sample", "32", "--since", SINCE]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["n-2"]}]}]


def test_a_long_pvc_name_is_annotated_in_full_and_labelled_shortened():
    long = "p" * 200
    meta = manifest_jobs.job("j", "ai", long, "longhorn", "k", NOW, "brad")["metadata"]
    assert meta["annotations"]["soteria.io/pvc"] == long and len(meta["labels"]["soteria.io/pvc"]) <= 63


def test_restics_backup_job_backs_up_first_then_runs_manifest_and_forget_side_by_side(settings):
    settings.SOTERIA_RESTIC_FORGET_ARGS = ["--keep-last", "7"]
    body = restic_jobs.backup_job("soteria-backup-data-20260412-153000", "ai", "data", {}, "brad", NOW)
    pod = body["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["initContainers"]] == ["unlock", "backup"]
    assert [c["name"] for c in pod["containers"]] == ["manifest", "forget"]
    manifest = pod["containers"][0]
    assert manifest["command"][-2:] == ["--since", SINCE] and manifest["command"][3] == "/data"
    assert manifest["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert "envFrom" not in manifest and "env" not in manifest  # no restic credentials for the reader
    assert manifest["securityContext"] == RESTRICTED
    assert body["metadata"]["annotations"]["soteria.io/manifest-key"] == "soteria-backup-data-20260412-153000"
    settings.SOTERIA_RESTIC_FORGET_ARGS = []
    pod = restic_jobs.backup_job("j", "ai", "data", {}, "brad", NOW)["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["manifest"]


def _pod(job: str, *ends: ContainerEnd) -> Pod:
    return Pod(namespace="ai", name=f"{job}-x", phase="Failed", node_name="n", labels={"job-name": job},
               containers=ends)


def test_a_backup_whose_manifest_failed_is_still_a_successful_backup():
    saved = (ContainerEnd("unlock", 0, "Completed", "", True), ContainerEnd("backup", 0, "Completed", "", True))
    failed_manifest = _pod("job-a", *saved, ContainerEnd("manifest", 1, "Error", "Traceback ...\nOSError: boom\n"),
                           ContainerEnd("forget", 0, "Completed", ""))
    job = Job(namespace="ai", name="job-a", uid="u", state="Failed", labels={"soteria.io/pvc": "data"},
              annotations={"soteria.io/pvc": "data"}, created=NOW, started=NOW, finished=NOW)
    facts = restic_driver.backup_facts("pv-data", [], [job], {("ai", "job-a"): [failed_manifest]}, NOW)
    assert not facts.last_failure_is_newest and facts.last_failure_error == ""
    assert restic_jobs.backup_step_succeeded([failed_manifest])
    assert restic_jobs.pod_that_saved([failed_manifest]) is failed_manifest  # its summary is still read
    assert restic_jobs.failure_text(job, [failed_manifest]) == "manifest: Traceback ... OSError: boom"
    failed_backup = _pod("job-b", ContainerEnd("backup", 1, "Error", "Fatal: wrong password", True))
    job_b = Job(namespace="ai", name="job-b", uid="u", state="Failed", annotations={"soteria.io/pvc": "data"},
                created=NOW, started=NOW, finished=NOW + timedelta(minutes=1))
    facts = restic_driver.backup_facts("pv-data", [], [job, job_b], {("ai", "job-a"): [failed_manifest],
                                                                      ("ai", "job-b"): [failed_backup]}, NOW)
    assert facts.last_failure_is_newest and facts.last_failure_error == "backup: Fatal: wrong password"


def test_restics_dry_run_shows_the_manifest_step(cluster, monkeypatch, settings):
    settings.SOTERIA_SECRET_NAMESPACE, settings.SOTERIA_RESTIC_SECRET_NAME = "soteria", "soteria-restic"
    monkeypatch.setattr(kubernetes, "get_secret", lambda ns, name: Secret(ns, name, {
        "AWS_ACCESS_KEY_ID": b"k", "AWS_SECRET_ACCESS_KEY": b"s", "RESTIC_PASSWORD": b"p"}, "1"))
    cluster.add_pvc("ai", "files", storage_class="local-path", csi_driver=None)
    result = restic_driver.DRIVER.backup(claims.get_claim("ai", "files"), {}, "brad", True, NOW)
    create = next(step for step in result.plan if step.call == "kubernetes.createJob")
    assert create.args["manifest"] == {"image": "python:3.12-alpine", "reads": "/data", "readOnly": True,
                                       "since": "2026-04-12T15:29:30Z", "sample": 32}
    assert cluster.mutating_calls == {}


@pytest.mark.django_db
def test_longhorn_starts_a_manifest_job_on_the_node_using_the_claim(cluster, frozen):
    cluster.add_pvc("ai", "data")
    cluster.pods = [Pod(namespace="ai", name="app-0", phase="Running", node_name="worker-3", claims=("data",))]
    result = backup.backup_pvc("ai", "data", [], "brad")
    body = cluster.job_bodies[("ai", "soteria-manifest-data-20260412-153000")]
    assert body["metadata"]["annotations"]["soteria.io/manifest-key"] == result.backup
    assert body["metadata"]["labels"]["soteria.io/driver"] == "longhorn"
    pod = body["spec"]["template"]["spec"]
    assert pod["containers"][0]["command"][-2:] == ["--since", SINCE]
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms[0]["matchFields"][0]["values"] == ["worker-3"]
    assert cluster.calls["backup_snapshot"] == 1 and cluster.calls["create_job"] == 1


@pytest.mark.django_db(transaction=True)  # the batch's threads write their own rows
def test_a_namespace_backup_lists_the_pods_once_and_pins_each_job_to_its_claims_node(cluster, frozen):
    for i in range(6):
        cluster.add_pvc("ai", f"data-{i}")
    cluster.pods = [Pod(namespace="ai", name=f"app-{i}", phase="Running", node_name=f"worker-{i % 3}",
                        claims=(f"data-{i}",)) for i in range(5)]  # data-5 is not mounted
    cluster.pods.append(Pod(namespace="ai", name="old", phase="Succeeded", node_name="worker-9", claims=("data-5",)))
    result = backup.backup_namespace("ai", [], "brad")
    assert result.totals["success"] == 6 and cluster.calls["list_pods"] == 1

    def node(i):
        body = cluster.job_bodies[("ai", f"soteria-manifest-data-{i}-20260412-153000")]
        affinity = body["spec"]["template"]["spec"].get("affinity")
        terms = affinity["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] \
            if affinity else []
        return terms[0]["matchFields"][0]["values"][0] if terms else ""

    assert [node(i) for i in range(6)] == ["worker-0", "worker-1", "worker-2", "worker-0", "worker-1", ""]


@pytest.mark.django_db
def test_a_manifest_job_that_cannot_be_created_does_not_fail_the_backup(cluster, frozen, caplog):
    cluster.add_pvc("ai", "data")
    cluster.fail["create_job"] = UpstreamError("kubernetes", "jobs.batch is forbidden")
    result = backup.backup_pvc("ai", "data", [], "brad")
    assert result.backup == "soteria-backup-ai-data-20260412-153000" and cluster.calls["backup_snapshot"] == 1
    warning = next(e for e in cluster.events if e["reason"] == "ManifestNotStarted")
    assert warning["type"] == "Warning" and warning["involvedObject"]["name"] == "data"
    assert "jobs.batch is forbidden" in warning["message"] and result.backup in warning["message"]
    assert [e["reason"] for e in cluster.events] == ["ManifestNotStarted", "BackupStarted"]
    assert "could not be created" in caplog.text


@pytest.mark.django_db
def test_longhorns_dry_run_plans_the_manifest_job_and_creates_nothing(cluster, frozen):
    cluster.add_pvc("ai", "data")
    result = backup.backup_pvc("ai", "data", [], "brad", dry_run=True)
    assert [s.call for s in result.plan] == ["snapshotCRCreate", "snapshotBackup", "kubernetes.createJob"]
    assert result.plan[2].target == "ai/soteria-manifest-data-20260412-153000"
    assert cluster.mutating_calls == {} and cluster.calls["list_pods"] == 0
