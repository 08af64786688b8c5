"""The restic driver's Kubernetes objects: Job and per-Job Secret bodies, their names and
labels, the restic Secret's credentials, and how a Job's outcome reads.

A backup Job runs, as init containers of the restic image (only `args`: the image's
entrypoint is restic), `unlock` (removes stale locks only) and `backup . --json` (its log
ends with restic's summary) in the claim's mount (so a snapshot's tree holds the claim's
files at its root, whatever restic version restores it); then, side by side so that neither
waits for the other, `manifest` (the claim's manifest at backup time, manifest_jobs.py)
and `forget` of that PVC's snapshots when SOTERIA_RESTIC_FORGET_ARGS is set. Credentials
come from a copy of the restic Secret in the Job's namespace, owned by the Job
(garbage-collected with it), through `envFrom`; never through arguments. The Job's
security context, labels and node pinning are every Soteria Job's (job_bodies.py).
"""

from __future__ import annotations

import re
from datetime import datetime

from django.conf import settings

from soteria_site.core import kubernetes, names
from soteria_site.core.errors import NotFound, UpstreamUnavailable
from soteria_site.core.workloads import Job, Pod

from ..clients import restic
from ..clients.restic import Credentials
from . import job_bodies, manifest_jobs
from .job_bodies import security_contexts

# Every Soteria Job's labels (job_bodies.py), under the names the restic modules use.
MANAGED_BY, DRIVER_LABEL, OPERATION_LABEL = job_bodies.MANAGED_BY, job_bodies.DRIVER_LABEL, job_bodies.OPERATION_LABEL
PVC_LABEL, PVC_ANNOTATION = job_bodies.PVC_LABEL, job_bodies.PVC_ANNOTATION
# Snapshot tags naming the PVC (always selected together, never by host alone), the Job
# that took it, and Soteria's own keys: users cannot set soteria.io/ tags (core.names).
NAMESPACE_TAG = "soteria.io/namespace"
PVC_TAG = "soteria.io/pvc"
JOB_TAG = "soteria.io/job"
RESTORE_JOB_ANNOTATION = "soteria.io/restore-job"
SNAPSHOT_ANNOTATION = "soteria.io/snapshot"
DATA_MOUNT = "/data"
RESTORE_MOUNT = "/restore"
_NAME_OK = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def selector(operation: str) -> str:
    return f"{MANAGED_BY}=soteria,{DRIVER_LABEL}=restic,{OPERATION_LABEL}={operation}"


def pvc_tags(namespace: str, pvc: str) -> list[str]:
    return [f"{NAMESPACE_TAG}={namespace}", f"{PVC_TAG}={pvc}"]


def repository() -> str:
    """SOTERIA_RESTIC_REPOSITORY; an `s3:bucket/prefix` without a host gets SOTERIA_S3_ENDPOINT."""
    repo = settings.SOTERIA_RESTIC_REPOSITORY
    endpoint = settings.SOTERIA_S3_ENDPOINT.rstrip("/")
    if endpoint and repo.startswith("s3:") and "://" not in repo:
        return f"s3:{endpoint}/{repo[3:].lstrip('/')}"
    return repo


def credentials() -> Credentials:
    """The restic Secret's three keys; a missing Secret or key is a clear error naming it."""
    namespace, name = settings.SOTERIA_SECRET_NAMESPACE, settings.SOTERIA_RESTIC_SECRET_NAME
    where = f"Secret {namespace}/{name} (SOTERIA_RESTIC_SECRET_NAME)"
    try:
        secret = kubernetes.get_secret(namespace, name)
    except NotFound:
        raise _misconfigured(f"the restic driver needs {where}, which does not exist; it must hold "
                             f"{', '.join(restic.CREDENTIAL_KEYS)}", "restic_secret_missing") from None
    missing = [key for key in restic.CREDENTIAL_KEYS if key not in secret.data]
    if missing:
        raise _misconfigured(f"{where} has no key {', '.join(missing)}; it must hold "
                             f"{', '.join(restic.CREDENTIAL_KEYS)}", "restic_secret_incomplete", missing=missing)
    return Credentials({key: secret.data[key].decode("utf-8", "replace") for key in restic.CREDENTIAL_KEYS})


def _misconfigured(detail: str, code: str, **extra) -> UpstreamUnavailable:
    exc = UpstreamUnavailable("restic", detail, **extra)
    exc.code = code
    return exc


def labels(operation: str, pvc: str) -> dict[str, str]:
    return job_bodies.labels("restic", operation, pvc)


def _container(name: str, args: list[str], secret: str, mounts: list[dict], working_dir: str = "") -> dict:
    env = [{"name": "RESTIC_REPOSITORY", "value": repository()},
           {"name": "RESTIC_CACHE_DIR", "value": "/cache"}, {"name": "HOME", "value": "/cache"},
           {"name": "TMPDIR", "value": "/tmp"}]
    if settings.SOTERIA_S3_REGION:
        env.append({"name": "AWS_DEFAULT_REGION", "value": settings.SOTERIA_S3_REGION})
    container = {
        "name": name, "image": settings.SOTERIA_RESTIC_IMAGE, "imagePullPolicy": "IfNotPresent", "args": args,
        "env": env, "envFrom": [{"secretRef": {"name": secret}}],
        "volumeMounts": mounts + [{"name": "cache", "mountPath": "/cache"}, {"name": "tmp", "mountPath": "/tmp"}],
        "securityContext": security_contexts()[1],
        # restic's own last words become the termination message when it fails.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    if working_dir:
        container["workingDir"] = working_dir
    return container


def _job(name: str, namespace: str, job_labels: dict, annotations: dict, steps: list[dict], claim: dict) -> dict:
    """A Job running `steps` in order (all but the last as init containers), once (no retries)."""
    return job_bodies.job_body(name, namespace, job_labels, annotations, steps[:-1], steps[-1:], _volumes(claim))


def _volumes(claim: dict) -> list[dict]:
    return [claim, {"name": "cache", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]


def host(namespace: str, pvc: str) -> str:
    """restic's --host for one PVC's snapshots: stable across Job pods and distinct per PVC, so
    restic takes the PVC's own newest snapshot as the parent of the next backup (it picks the
    parent by host and path, and every claim is backed up from the same path). Snapshots are
    still selected by their namespace and pvc tags, never by host alone."""
    return names.fit_name(f"soteria.{namespace}.{pvc}", names.DNS_SUBDOMAIN_MAX)


def backup_args(namespace: str, pvc: str, job: str, tags: dict[str, str]) -> list[str]:
    args = ["backup", ".", "--host", host(namespace, pvc)]
    for tag in pvc_tags(namespace, pvc) + [f"{JOB_TAG}={job}"] + [f"{k}={v}" for k, v in sorted(tags.items())]:
        args += ["--tag", tag]
    # --json: the run ends with a summary line (files and bytes added, the snapshot's id) that
    # GET /v1/backups reads back from the container's log while the Job exists.
    return args + ["--json"] + list(settings.SOTERIA_RESTIC_BACKUP_ARGS)


def forget_args(namespace: str, pvc: str) -> list[str]:
    """`forget` of this PVC's snapshots only: both tags together (restic ANDs a comma list)."""
    return ["forget", "--host", host(namespace, pvc), "--tag", ",".join(pvc_tags(namespace, pvc)),
            *settings.SOTERIA_RESTIC_FORGET_ARGS]


def backup_job(name: str, namespace: str, pvc: str, tags: dict[str, str], requested_by: str, created: datetime,
               node: str = "") -> dict:
    """`unlock` and `backup` in turn, then `manifest` and `forget` (when configured) side by side.
    The manifest leaves out files changed since `created` (the Job's creation) minus the margin."""
    mount = [{"name": "data", "mountPath": DATA_MOUNT, "readOnly": True}]
    steps = [_container("unlock", ["unlock"], name, []),
             _container("backup", backup_args(namespace, pvc, name, tags), name, mount, working_dir=DATA_MOUNT)]
    after = [manifest_jobs.container(manifest_jobs.since(created), DATA_MOUNT)]
    if settings.SOTERIA_RESTIC_FORGET_ARGS:
        after.append(_container("forget", forget_args(namespace, pvc), name, []))
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": pvc, "readOnly": True}}
    annotations = {PVC_ANNOTATION: pvc, "soteria.io/requested-by": requested_by, manifest_jobs.KEY_ANNOTATION: name}
    return job_bodies.job_body(name, namespace, labels("backup", pvc), annotations, steps, after, _volumes(claim),
                               node)


def restore_job(name: str, namespace: str, target_pvc: str, snapshot_id: str, source: str,
                requested_by: str, extra_labels: dict[str, str] | None = None) -> dict:
    mount = [{"name": "data", "mountPath": RESTORE_MOUNT}]
    steps = [_container("unlock", ["unlock"], name, []),
             _container("restore", ["restore", snapshot_id, "--target", RESTORE_MOUNT], name, mount)]
    claim = {"name": "data", "persistentVolumeClaim": {"claimName": target_pvc}}
    return _job(name, namespace, {**labels("restore", target_pvc), **(extra_labels or {})},
                {PVC_ANNOTATION: target_pvc, SNAPSHOT_ANNOTATION: snapshot_id, "soteria.io/source": source,
                 "soteria.io/requested-by": requested_by}, steps, claim)


def secret_body(job: Job, creds: Credentials) -> dict:
    """The per-Job copy of the restic Secret, owned by the Job (garbage-collected with it)."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": names.job_secret_name(job.name), "namespace": job.namespace, "labels": dict(job.labels),
                     "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": job.name,
                                          "uid": job.uid, "controller": True}]},
        "stringData": creds.env(),
    }


# restic's exit codes for `backup`: 0 saved, 3 saved without some files it could not read.
SAVED_EXIT_CODES = (0, 3)
# The summary is the backup container's last stdout line; at most a warning line follows it.
SUMMARY_LOG_LINES = 8


def pod_that_saved(pods: list[Pod]) -> Pod | None:
    """The Job's pod whose `backup` container ended having saved a snapshot (its log holds the summary)."""
    for pod in pods:
        if any(end.container == "backup" and end.exit_code in SAVED_EXIT_CODES for end in pod.containers):
            return pod
    return None


def backup_step_succeeded(pods: list[Pod]) -> bool:
    """Whether the `backup` container of a Job's pod exited 0 (the snapshot was saved)."""
    return any(end.container == "backup" and end.exit_code == 0 for pod in pods for end in pod.containers)


def failure_text(job: Job, pods: list[Pod]) -> str:
    """Why a Job failed, in restic's words when it said any: the failed container's termination
    message (its log's end, FallbackToLogsOnError), else a waiting reason, else the Job's condition."""
    for pod in pods:
        for end in pod.containers:
            if end.exit_code not in (None, 0):
                words = tail(end.message) or f"exit code {end.exit_code}"
                return f"{end.container}: {words}"
    for pod in pods:
        for end in pod.containers:
            if end.exit_code is None and end.reason and end.message:
                return f"{end.container}: {end.reason}: {end.message}"
        if pod.reason or pod.message:
            return f"{pod.reason}: {pod.message}".strip(": ")
    if job.reason or job.message:
        return f"{job.reason}: {job.message}".strip(": ")
    return "the restic Job failed"


def tail(text: str, limit: int = 600) -> str:
    # restic's error is its last lines; progress or listing lines come before. `backup --json`'s
    # progress and summary lines say nothing of an error; its JSON error lines become text.
    lines = [line for line in map(restic.readable, (text or "").strip().splitlines()) if line]
    text = " ".join(lines[-4:])
    return text if len(text) <= limit else "..." + text[-limit:]
