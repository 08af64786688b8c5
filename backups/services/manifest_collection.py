"""Collecting the manifests taken at backup time (drivers/manifest_jobs.py) into each PVC's
verification record (drill_records.py), where they outlive the Jobs that printed them.

A Job's manifest is its `manifest` container's last log line, read once that container has
exited 0 and while the PVC's record does not hold its key yet. A Longhorn manifest Job
(a Job of its own) is deleted once its manifest is kept; one that failed is told once (log,
a Warning Event ManifestFailed on the PVC), then deleted. restic's backup Jobs keep their
backup's summary until their TTL, so they are never deleted here; a failed manifest
container of theirs is told once (remembered in the shared cache for the Jobs' TTL).

Calls, whatever the number of PVCs: one list of Soteria's backup and manifest Jobs, one
list of their pods when there are Jobs, one list of the records when a manifest has ended;
then, per manifest newly ended, one log read and the record's compare-and-swap write (and
the Job's deletion for Longhorn); per failure told, the PVC's read and its Event.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from django.conf import settings
from django.core.cache import cache

from soteria_site.core import events, kubernetes, names, workloads
from soteria_site.core.errors import SoteriaError
from soteria_site.core.workloads import COMPLETE, FAILED, ContainerEnd, Job, Pod

from ..drivers import job_bodies, manifest_jobs
from ..manifests import ManifestUnreadable, parse_output
from . import drill_records

log = logging.getLogger(__name__)
SELECTOR = (f"{job_bodies.MANAGED_BY}=soteria,"
            f"{job_bodies.OPERATION_LABEL} in (backup,{manifest_jobs.OPERATION})")
# The manifest is the reader's last line (a warning may follow it); at most this many bytes.
LOG_LINES = 3
LOG_BYTES = 1 << 20
FAILED_REASON = "ManifestFailed"
_REPORTED = "soteria:manifest:reported:"


def collect(namespace: str | None = None, pvc: str | None = None) -> dict:
    """Keep every newly ended manifest (of one PVC's Jobs, when given). Every Job looked at is
    counted once: `collected` (kept now), `failed` (told now), `skipped` (still running, kept
    or told before, or a backup Job whose manifest never ran)."""
    if namespace:
        names.require_dns_label(namespace, "namespace")
    selector = SELECTOR
    if pvc:
        names.require_dns_subdomain(pvc, "pvc")
        selector += f",{job_bodies.PVC_LABEL}={names.label_value(pvc)}"
    counts = {"collected": 0, "failed": 0, "skipped": 0}
    jobs = [j for j in workloads.list_jobs(selector, namespace=namespace) if pvc in (None, _pvc_of(j))]
    if not jobs:
        return counts
    pods: dict[tuple[str, str], list[Pod]] = {}
    for pod in workloads.list_pods(selector, namespace=namespace):
        pods.setdefault((pod.namespace, pod.labels.get("job-name", "")), []).append(pod)
    ended = {job.name: _manifest_end(pods.get((job.namespace, job.name), [])) for job in jobs}
    records = drill_records.load_all() if any(e and e[1].exit_code == 0 for e in ended.values()) else {}
    for job in jobs:
        outcome = _one(job, ended[job.name], records)
        counts[outcome] += 1
    return counts


def _one(job: Job, ended: tuple[Pod, ContainerEnd] | None, records: dict) -> str:
    own = job.labels.get(job_bodies.OPERATION_LABEL) == manifest_jobs.OPERATION  # a Longhorn manifest Job
    if ended is None:
        if own and job.state == FAILED:
            return _failed(job, own, f"{job.reason}: {job.message}".strip(": ") or "the Job failed")
        if own and job.state == COMPLETE:
            return _failed(job, own, "its pod is gone, and the manifest with it")
        return "skipped"  # running, or a backup Job whose backup step failed before it
    pod, end = ended
    if end.exit_code != 0:
        return _failed(job, own, f"exit code {end.exit_code}: {_last_words(end.message)}")
    namespace, pvc, key = job.namespace, _pvc_of(job), _key_of(job)
    record = records.get((namespace, pvc)) or drill_records.Record(namespace, pvc)
    finished = end.finished or job.finished or datetime.now(timezone.utc)
    if key in record.manifests or _too_old(record, finished):
        return _done(job, own, "skipped")
    text = workloads.pod_log(pod.namespace, pod.name, manifest_jobs.CONTAINER, tail_lines=LOG_LINES,
                             limit_bytes=LOG_BYTES)
    try:
        manifest = parse_output(text)
    except ManifestUnreadable as exc:
        return _failed(job, own, str(exc))
    try:
        records[(namespace, pvc)] = drill_records.update(namespace, pvc,
                                                         lambda r: r.add_manifest(key, manifest, finished))
    except SoteriaError as exc:  # kept for the next collection
        log.warning("manifest %s of %s/%s could not be kept: %s", key, namespace, pvc, exc.detail)
        return "skipped"
    log.info("manifest %s of %s/%s kept: %d files, %d bytes", key, namespace, pvc, manifest.files, manifest.bytes)
    return _done(job, own, "collected")


def _failed(job: Job, own: bool, why: str) -> str:
    """Tell a failed manifest once: a log line and a Warning Event on the PVC."""
    ttl = settings.SOTERIA_JOB_TTL_SECONDS or 86400
    if not cache.add(f"{_REPORTED}{job.namespace}/{job.name}", True, timeout=ttl):
        return _done(job, own, "skipped")
    namespace, pvc, key = job.namespace, _pvc_of(job), _key_of(job)
    message = f"No manifest of backup {key}: Job {job.name}: {why}"
    log.warning("PVC %s/%s: %s", namespace, pvc, message)
    try:
        claim = kubernetes.find_pvc(namespace, pvc)
    except SoteriaError as exc:
        log.warning("could not read PVC %s/%s to tell it: %s", namespace, pvc, exc.detail)
        claim = None
    if claim is not None:
        events.emit_on_pvc(claim, FAILED_REASON, message, warning=True)
    return _done(job, own, "failed")


def _done(job: Job, own: bool, outcome: str) -> str:
    """A Longhorn manifest Job has served once its outcome is kept or told; restic's stay."""
    if own:
        try:
            workloads.delete_job(job.namespace, job.name)
        except SoteriaError as exc:
            log.warning("could not delete manifest Job %s/%s: %s", job.namespace, job.name, exc.detail)
    return outcome


def _manifest_end(pods: list[Pod]) -> tuple[Pod, ContainerEnd] | None:
    """The pod and end of the Job's `manifest` container, once it has exited (a success first)."""
    ends = [(pod, end) for pod in pods for end in pod.containers
            if end.container == manifest_jobs.CONTAINER and not end.init and end.exit_code is not None]
    ends.sort(key=lambda found: found[1].exit_code != 0)
    return ends[0] if ends else None


def _too_old(record: drill_records.Record, finished: datetime) -> bool:
    """A full record whose every manifest is newer would drop this one at once: not worth a read."""
    if len(record.manifests) < drill_records.MANIFESTS_KEPT:
        return False
    kept = [drill_records.when(m.get("recorded_at")) for m in record.manifests.values()]
    return all(when is not None and when >= finished for when in kept)


def _pvc_of(job: Job) -> str:
    return job.annotations.get(job_bodies.PVC_ANNOTATION) or job.labels.get(job_bodies.PVC_LABEL, "")


def _key_of(job: Job) -> str:
    """A manifest's key: the Job's annotation (a restic backup Job's own name without one)."""
    return job.annotations.get(manifest_jobs.KEY_ANNOTATION) or job.name


def _last_words(message: str, limit: int = 300) -> str:
    lines = [line.strip() for line in (message or "").strip().splitlines() if line.strip()]
    text = " ".join(lines[-3:]) or "no output"
    return text if len(text) <= limit else "..." + text[-limit:]
