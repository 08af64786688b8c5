"""restic restores: choose one of the source PVC's own snapshots, then create a Job that mounts
the new claim and runs `restic restore <snapshot id>` into it, the Job's copy of the restic
Secret, and last the claim itself (the source's class, size and access modes, provisioned by
its storage class); if a step fails, the Job is deleted and takes its Secret with it."""

from __future__ import annotations

import logging
from datetime import datetime

from soteria_site.core import kubernetes, names, workloads
from soteria_site.core.errors import Conflict, NotFound, SoteriaError
from soteria_site.core.kubernetes import Pvc
from soteria_site.core.workloads import COMPLETE, FAILED

from ..clients.restic import Credentials, Snapshot
from ..types import RESTORED_FROM, BackupRecord, Claim, PlannedCall, RestorePlan, RestoreProgress
from . import restic_jobs as jobs
from .base import restore_failed, unanswered

log = logging.getLogger(__name__)
RESTORED_BACKUP = "soteria.io/backup"


def choose(snapshots: list[Snapshot], snapshot: str, claim: Claim) -> Snapshot:
    """`latest`/blank: the newest of the claim's own snapshots; else the one whose id (full,
    short, or a unique prefix of at least 8 characters) is given. `snapshots` are the claim's
    own, newest first, so another PVC's snapshot is never found."""
    namespace, pvc = claim.key
    if snapshot in ("", "latest"):
        if not snapshots:
            raise NotFound(f"PVC {namespace}/{pvc} has no restic snapshot to restore", code="no_backup")
        return snapshots[0]
    wanted = snapshot.strip().lower()
    matches = [s for s in snapshots if s.id == wanted or s.short_id == wanted
               or (len(wanted) >= 8 and s.id.startswith(wanted))]
    if not matches:
        raise NotFound(f"PVC {namespace}/{pvc} has no restic snapshot {snapshot!r}", field="snapshot")
    if len(matches) > 1:
        raise Conflict(f"snapshot {snapshot!r} is ambiguous: give more of its id", code="ambiguous_snapshot",
                       field="snapshot")
    return matches[0]


def plan(claim: Claim, backup: BackupRecord, target_namespace: str, target_pvc: str, now: datetime) -> RestorePlan:
    pvc = claim.pvc
    size = pvc.requested or pvc.capacity or ""
    storage_class = pvc.storage_class or ""
    job = names.job_name("restore", target_pvc, now)
    calls = (
        PlannedCall("kubernetes.createJob", f"{target_namespace}/{job}",
                    {"args": ["restore", backup.name, "--target", jobs.RESTORE_MOUNT]}),
        PlannedCall("kubernetes.createSecret", f"{target_namespace}/{job}", {"ownerReference": f"Job {job}"}),
        PlannedCall("kubernetes.createPersistentVolumeClaim", f"{target_namespace}/{target_pvc}",
                    {"storageClassName": storage_class, "storage": size, "accessModes": list(pvc.access_modes)}),
    )
    return RestorePlan(driver="restic", namespace=pvc.namespace, pvc=pvc.name, source_volume=pvc.volume_name or "",
                       backup=backup, target_namespace=target_namespace, target_pvc=target_pvc, volume="", pv="",
                       storage_class=storage_class, access_modes=pvc.access_modes, size=size, calls=calls,
                       source_size=size, job=job)


def pvc_body(p: RestorePlan, requested_by: str) -> dict:
    labels = {RESTORED_FROM: f"{p.namespace}.{p.pvc}"[:63].rstrip("-."), RESTORED_BACKUP: p.backup.snapshot,
              jobs.DRIVER_LABEL: "restic", **p.extra_labels}
    annotations = {"soteria.io/source": f"{p.namespace}/{p.pvc}", "soteria.io/requested-by": requested_by,
                   "soteria.io/source-volume": p.source_volume, jobs.SNAPSHOT_ANNOTATION: p.backup.name,
                   jobs.RESTORE_JOB_ANNOTATION: p.job}
    spec = {"accessModes": list(p.access_modes), "resources": {"requests": {"storage": p.size}}}
    if p.storage_class:
        spec["storageClassName"] = p.storage_class
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": p.target_pvc, "namespace": p.target_namespace, "labels": labels,
                         "annotations": annotations},
            "spec": spec}


def execute(p: RestorePlan, creds: Credentials, requested_by: str) -> RestorePlan:
    """Create the Job, its Secret, then the claim (last, so a failed restore never has to delete a
    PVC: the Job's pod waits for the claim); on failure delete the Job (its Secret goes with it)."""
    created: list[tuple[str, str]] = []
    step = ("job", p.job)
    try:
        body = jobs.restore_job(p.job, p.target_namespace, p.target_pvc, p.backup.name, f"{p.namespace}/{p.pvc}",
                                requested_by, p.extra_labels)
        job = workloads.create_job(p.target_namespace, body)
        created.append(step)
        step = ("secret", "")  # owned by the Job: it goes with it
        kubernetes.create_secret(p.target_namespace, jobs.secret_body(job, creds))
        step = ("pvc", p.target_pvc)
        kubernetes.create_pvc(p.target_namespace, pvc_body(p, requested_by))
        return p
    except SoteriaError as exc:
        # A Job or claim whose create went unanswered may exist (a lost answer): deleted too.
        if step[0] in ("job", "pvc") and step not in created and unanswered(exc):
            created.append(step)
        cleanup = undo(p.target_namespace, created)
        raise restore_failed(exc, cleanup) from None


def undo(namespace: str, created: list[tuple[str, str]]) -> dict:
    """Delete what a restore created: its claim, and its Job, which takes its pods and Secret with it."""
    deleted, errors = [], []
    for kind, name in reversed(created):
        try:
            if kind == "pvc":
                kubernetes.delete_pvc(namespace, name)
            else:
                workloads.delete_job(namespace, name)
            deleted.append(f"{kind} {namespace}/{name}")
        except SoteriaError as exc:
            log.error("cleanup of %s %s/%s failed: %s", kind, namespace, name, exc.detail)
            errors.append(f"{kind} {namespace}/{name}: {exc.detail}")
    return {"succeeded": not errors, "deleted": deleted, "errors": errors}


def progress(pvcs: list[Pvc]) -> dict[tuple[str, str], RestoreProgress]:
    """Each restored claim's Job: running, complete or failed (restic's error). One list of
    restore Jobs, and one of their pods when some failed, whatever the number of claims."""
    if not pvcs:
        return {}
    by_name = {(j.namespace, j.name): j for j in workloads.list_jobs(jobs.selector("restore"))}
    pods: dict[tuple[str, str], list] = {}
    if any(j.state == FAILED for j in by_name.values()):
        for pod in workloads.list_pods(jobs.selector("restore")):
            pods.setdefault((pod.namespace, pod.labels.get("job-name", "")), []).append(pod)
    found = {}
    for pvc in pvcs:
        job = by_name.get((pvc.namespace, pvc.annotations.get(jobs.RESTORE_JOB_ANNOTATION, "")))
        if job is None:
            found[(pvc.namespace, pvc.name)] = RestoreProgress(
                "unknown", None, "the restore Job is gone (removed SOTERIA_JOB_TTL_SECONDS after it finished); "
                                 "its outcome is no longer known")
        elif job.state == COMPLETE:
            found[(pvc.namespace, pvc.name)] = RestoreProgress("done", 100, f"Job {job.name} completed")
        elif job.state == FAILED:
            found[(pvc.namespace, pvc.name)] = RestoreProgress(
                "failed", None, jobs.failure_text(job, pods.get((job.namespace, job.name), [])))
        else:
            found[(pvc.namespace, pvc.name)] = RestoreProgress("restoring", None, f"Job {job.name} is running")
    return found

