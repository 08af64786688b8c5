"""The restic driver's Jobs and Secrets as Kubernetes will see them, and its names."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from backups.drivers import restic_jobs as jobs
from soteria_site.core import names
from soteria_site.core.errors import UpstreamUnavailable
from soteria_site.core.kubernetes import Secret
from soteria_site.core.workloads import ContainerEnd, Job, Pod


@pytest.fixture(autouse=True)
def _restic_settings(settings):
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:https://s3.example.com/bucket/soteria"
    settings.SOTERIA_RESTIC_IMAGE = "restic/restic:0.16.4"
    settings.SOTERIA_RESTIC_BACKUP_ARGS = ["--exclude", "*.tmp"]
    settings.SOTERIA_RESTIC_FORGET_ARGS = []
    settings.SOTERIA_JOB_TTL_SECONDS = 600
    settings.SOTERIA_JOB_NODE_SELECTOR = {}
    settings.SOTERIA_JOB_SERVICE_ACCOUNT = ""
    settings.SOTERIA_S3_REGION = ""
    settings.SOTERIA_JOB_RUN_AS_USER = settings.SOTERIA_JOB_RUN_AS_GROUP = 65532


def test_job_names_fit_63_characters_stable_and_distinct():
    when = datetime(2026, 4, 12, 15, 30, tzinfo=timezone.utc)
    assert names.job_name("backup", "data", when) == "soteria-backup-data-20260412-153000"
    long_a = names.job_name("backup", "a" * 60 + "-one", when)
    long_b = names.job_name("backup", "a" * 60 + "-two", when)
    assert len(long_a) <= 63 and len(long_b) <= 63 and long_a != long_b
    assert long_a == names.job_name("backup", "a" * 60 + "-one", when)
    dotted = names.job_name("backup", "db.primary", when)
    assert "." not in dotted and dotted != names.job_name("backup", "db-primary", when)
    assert len(names.job_name("backup", "x" * 253, when)) <= 63
    assert names.label_value("p" * 253) != names.label_value("p" * 252) and len(names.label_value("p" * 253)) <= 63


WHEN = datetime(2026, 4, 12, 15, 30, tzinfo=timezone.utc)


def test_backup_job_runs_unlock_then_backup_with_the_claim_read_only():
    body = jobs.backup_job("soteria-backup-data-1", "ai", "data", {"service": "llm"}, "brad", WHEN)
    spec = body["spec"]
    pod = spec["template"]["spec"]
    assert spec["backoffLimit"] == 0 and spec["ttlSecondsAfterFinished"] == 600 and spec["activeDeadlineSeconds"] > 0
    unlock, backup = pod["initContainers"]
    assert unlock["name"] == "unlock" and [c["name"] for c in pod["containers"]] == ["manifest"]
    assert backup["image"] == "restic/restic:0.16.4" and "command" not in backup
    assert backup["args"][:4] == ["backup", ".", "--host", "soteria.ai.data"]
    tags = [backup["args"][i + 1] for i, a in enumerate(backup["args"]) if a == "--tag"]
    assert tags == ["soteria.io/namespace=ai", "soteria.io/pvc=data", "soteria.io/job=soteria-backup-data-1",
                    "service=llm"]
    assert backup["args"][-3:] == ["--json", "--exclude", "*.tmp"]  # --json: the log ends with restic's summary
    assert backup["workingDir"] == "/data"
    assert {"name": "data", "mountPath": "/data", "readOnly": True} in backup["volumeMounts"]
    assert pod["volumes"][0] == {"name": "data", "persistentVolumeClaim": {"claimName": "data", "readOnly": True}}
    assert backup["envFrom"] == [{"secretRef": {"name": "soteria-backup-data-1"}}]
    assert {"name": "RESTIC_REPOSITORY", "value": "s3:https://s3.example.com/bucket/soteria"} in backup["env"]
    assert pod["automountServiceAccountToken"] is False and "serviceAccountName" not in pod
    assert pod["securityContext"] == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532,
                                      "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}}
    assert backup["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert backup["securityContext"]["allowPrivilegeEscalation"] is False
    assert body["metadata"]["labels"] == {
        "app.kubernetes.io/managed-by": "soteria", "soteria.io/driver": "restic", "soteria.io/operation": "backup",
        "soteria.io/pvc": "data"}


def test_forget_runs_after_the_backup_beside_the_manifest_only_when_configured(settings):
    settings.SOTERIA_RESTIC_FORGET_ARGS = ["--keep-last", "7"]
    settings.SOTERIA_JOB_SERVICE_ACCOUNT = "restic-runner"
    settings.SOTERIA_JOB_NODE_SELECTOR = {"disk": "ssd"}
    settings.SOTERIA_S3_REGION = "eu-west-1"
    settings.SOTERIA_JOB_RUN_AS_USER, settings.SOTERIA_JOB_RUN_AS_GROUP = 999, 998
    pod = jobs.backup_job("j", "ai", "data", {}, "brad", WHEN, node="node-2")["spec"]["template"]["spec"]
    assert (pod["securityContext"]["runAsUser"], pod["securityContext"]["fsGroup"]) == (999, 998)
    assert [c["name"] for c in pod["initContainers"]] == ["unlock", "backup"]
    manifest, forget = pod["containers"]  # side by side: neither waits for the other
    assert manifest["name"] == "manifest"
    assert forget["args"] == ["forget", "--host", "soteria.ai.data", "--tag", "soteria.io/namespace=ai,soteria.io/pvc=data",
                              "--keep-last", "7"]
    assert pod["serviceAccountName"] == "restic-runner" and "automountServiceAccountToken" not in pod
    assert pod["nodeSelector"] == {"disk": "ssd"}
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["node-2"]}]}]
    assert {"name": "AWS_DEFAULT_REGION", "value": "eu-west-1"} in forget["env"]


def test_the_secret_copy_is_owned_by_its_job():
    from backups.clients.restic import Credentials

    job = Job(namespace="ai", name="j", uid="uid-1", state="Running", labels={"a": "b"})
    body = jobs.secret_body(job, Credentials({"RESTIC_PASSWORD": "pw", "AWS_ACCESS_KEY_ID": "k",
                                              "AWS_SECRET_ACCESS_KEY": "s"}))
    assert body["metadata"]["ownerReferences"] == [{"apiVersion": "batch/v1", "kind": "Job", "name": "j",
                                                    "uid": "uid-1", "controller": True}]
    assert body["metadata"]["namespace"] == "ai" and body["stringData"]["RESTIC_PASSWORD"] == "pw"


def test_a_missing_secret_key_is_named(monkeypatch, settings):
    from soteria_site.core import kubernetes

    settings.SOTERIA_SECRET_NAMESPACE, settings.SOTERIA_RESTIC_SECRET_NAME = "soteria", "soteria-restic"
    secret = Secret("soteria", "soteria-restic", {"AWS_ACCESS_KEY_ID": b"k", "AWS_SECRET_ACCESS_KEY": b"s"}, "1")
    monkeypatch.setattr(kubernetes, "get_secret", lambda namespace, name: secret)
    with pytest.raises(UpstreamUnavailable, match="has no key RESTIC_PASSWORD") as caught:
        jobs.credentials()
    assert caught.value.code == "restic_secret_incomplete" and caught.value.status == 503


def test_repository_gets_the_s3_endpoint_only_when_it_names_no_host(settings):
    settings.SOTERIA_S3_ENDPOINT = "http://minio.storage:9000/"
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:backups/soteria"
    assert jobs.repository() == "s3:http://minio.storage:9000/backups/soteria"
    settings.SOTERIA_RESTIC_REPOSITORY = "s3:https://s3.example.com/bucket/soteria"
    assert jobs.repository() == "s3:https://s3.example.com/bucket/soteria"


def test_failure_text_prefers_restics_own_words():
    job = Job(namespace="ai", name="j", uid="u", state="Failed", reason="BackoffLimitExceeded",
              message="Job has reached the specified backoff limit")
    pod = Pod(namespace="ai", name="j-x", phase="Failed", node_name="n", containers=(
        ContainerEnd("unlock", 0, "Completed", "", True),
        ContainerEnd("backup", 1, "Error", "open repository\nFatal: wrong password or no key found\n", True)))
    assert jobs.failure_text(job, [pod]) == "backup: open repository Fatal: wrong password or no key found"
    assert jobs.failure_text(job, []) == "BackoffLimitExceeded: Job has reached the specified backoff limit"
    waiting = Pod(namespace="ai", name="j-y", phase="Pending", node_name="n", containers=(
        ContainerEnd("unlock", None, "CreateContainerConfigError", 'secret "j" not found', True),))
    assert jobs.failure_text(job, [waiting]) == 'unlock: CreateContainerConfigError: secret "j" not found'


def test_failure_text_reads_backups_json_errors_as_text():
    """With --json, restic writes a file it could not read as a JSON line (exit 3, the snapshot
    saved without it), then its summary and a text warning: the error reads as without --json."""
    job = Job(namespace="ai", name="j", uid="u", state="Failed")
    log = "\n".join([
        '{"message_type":"error","error":{"Op":"open","Path":"secret","Err":13},"during":"archival",'
        '"item":"/data/secret"}',
        '{"message_type":"status","percent_done":1,"total_files":2}',
        '{"message_type":"summary","files_new":1,"data_added":351,"snapshot_id":"67507157"}',
        "Warning: at least one source file could not be read", ""])
    pod = Pod(namespace="ai", name="j-x", phase="Failed", node_name="n",
              containers=(ContainerEnd("backup", 3, "Error", log),))
    assert jobs.failure_text(job, [pod]) == ("backup: error: open /data/secret: permission denied "
                                             "Warning: at least one source file could not be read")
    assert jobs.pod_that_saved([pod]) is pod
    assert jobs.pod_that_saved([Pod(namespace="ai", name="j-y", phase="Failed", node_name="n",
                                    containers=(ContainerEnd("backup", 1, "Error", "Fatal: x"),))]) is None
