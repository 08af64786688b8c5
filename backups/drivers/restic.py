"""The restic driver: a Kubernetes Job per backup or restore, running restic against
SOTERIA_RESTIC_REPOSITORY (restic_jobs.py builds the Jobs).

Snapshots are tagged with the PVC's namespace and name (soteria.io/namespace=,
soteria.io/pvc=) and always selected by both tags, never by host alone. The
inventory costs a constant number of calls whatever the number of PVCs: one
`restic snapshots --json` of the whole repository in Soteria's own process (the
restic Secret read once), one list of Soteria's backup Jobs, and one list of
their pods when some failed (for restic's error).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from datetime import datetime, timezone

from django.conf import settings
from django.core.cache import cache

from soteria_site.core import kubernetes, names, workloads
from soteria_site.core.errors import Conflict, InvalidInput, NotFound, SoteriaError, UpstreamTimeout
from soteria_site.core.kubernetes import Pvc
from soteria_site.core.workloads import COMPLETE, FAILED, RUNNING, Job, Pod

from ..clients import restic
from ..clients.restic import Snapshot
from ..types import (
    BackupFacts,
    BackupRecord,
    BackupResult,
    BackupSummary,
    Claim,
    PlannedCall,
    Probe,
    RestorePlan,
    RestoreProgress,
)
from . import failure_memory as failure_ledger
from . import job_bodies, manifest_jobs, restic_restore
from . import restic_jobs as jobs
from .base import VolumeView, unanswered

log = logging.getLogger(__name__)
NAME = "restic"
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)
_REPOSITORY_KNOWN = 24 * 3600  # seconds Soteria remembers that the repository exists
LOGS_READ = 3  # one PVC's listing reads the logs of its newest failed Jobs, at most this many
SUMMARIES_READ = 3  # and the backup step's log of its newest Jobs that saved a snapshot, at most this many


def volume_of(claim: Claim) -> str:
    """What the inventory and metrics call the claim's volume: its PV."""
    return claim.pv.name if claim.pv is not None else (claim.pvc.volume_name or "")


def snapshot_key(snapshot: Snapshot) -> tuple[str, str] | None:
    values = snapshot.tag_values()
    namespace, pvc = values.get(jobs.NAMESPACE_TAG), values.get(jobs.PVC_TAG)
    return (namespace, pvc) if namespace and pvc else None


def to_record(snapshot: Snapshot, volume: str, summary: BackupSummary | None = None) -> BackupRecord:
    labels = {k: v for k, v in snapshot.tag_values().items() if k not in (jobs.NAMESPACE_TAG, jobs.PVC_TAG)}
    return BackupRecord(name=snapshot.id, snapshot=snapshot.short_id, url="", state="Completed", progress=100,
                        created=snapshot.time, size="", labels=labels, volume=volume, summary=summary)


def summary_of(snapshot: Snapshot, summaries: dict[str, BackupSummary]) -> BackupSummary | None:
    """The summary its Job's log printed: the Job named by the snapshot's tag, and the same id
    (restic 0.14 prints the short id, 0.16 the full one)."""
    summary = summaries.get(snapshot.tag_values().get(jobs.JOB_TAG, ""))
    return summary if summary and snapshot.id.startswith(summary.snapshot_id) else None


def job_record(job: Job, pods: list[Pod], volume: str) -> BackupRecord:
    failed = job.state == FAILED
    return BackupRecord(name=job.name, snapshot="", url="", state="Error" if failed else "InProgress",
                        progress=0, created=job.started or job.created, size="",
                        labels={jobs.JOB_TAG: job.name}, error=jobs.failure_text(job, pods) if failed else "",
                        volume=volume)


def job_key(job: Job) -> tuple[str, str]:
    return job.namespace, job.annotations.get(jobs.PVC_ANNOTATION) or job.labels.get(jobs.PVC_LABEL, "")


def _pods_by_job(pods: list[Pod]) -> dict[tuple[str, str], list[Pod]]:
    grouped: dict[tuple[str, str], list[Pod]] = {}
    for pod in pods:
        grouped.setdefault((pod.namespace, pod.labels.get("job-name", "")), []).append(pod)
    return grouped


def backup_facts(volume: str, snapshots: list[Snapshot], backup_jobs: list[Job],
                 pods: dict[tuple[str, str], list[Pod]], now: datetime) -> BackupFacts:
    """A claim's facts from its snapshots and Soteria's Jobs for it. A failed Job counts while it
    is newer than the newest snapshot; Soteria remembers it after the Job's TTL has removed it."""
    last_success = max((s.time for s in snapshots if s.time), default=None)
    ledger = failure_ledger.current()
    known = ledger.known(volume) if ledger else {}
    # A Job whose backup step succeeded and whose `manifest` or `forget` failed saved its snapshot:
    # not a failed backup.
    failures = [failure_ledger.Failure(job.name, jobs.failure_text(job, pods.get((job.namespace, job.name), [])),
                                       job.finished or job.started or job.created)
                for job in backup_jobs if job.state == FAILED
                and not jobs.backup_step_succeeded(pods.get((job.namespace, job.name), []))]
    listed = {f.backup for f in failures}

    def counts(f: failure_ledger.Failure) -> bool:
        return last_success is None or (f.first_seen is not None and f.first_seen > last_success)

    vanished = [f for name, f in known.items() if name not in listed and counts(f)]
    if ledger is not None:
        ledger.keep(volume, failures + vanished)
    newer = [f for f in failures + vanished if counts(f)]
    newest = max(newer, key=lambda f: f.first_seen or _EPOCH) if newer else None
    running = tuple((job.name, job.started or job.created) for job in backup_jobs if job.state == RUNNING)
    return BackupFacts(last_success_at=last_success, success_count=len(snapshots),
                       last_failure_is_newest=newest is not None,
                       last_failure_error=newest.error if newest else "", in_progress=running)


_init_lock = threading.Lock()


def ensure_repository(creds: restic.Credentials) -> None:
    """Initialise the repository only when it does not exist (remembered once seen). One
    initialiser at a time, across threads and processes (the shared database cache as a
    mutex): two concurrent `restic init` would each write a config and a key, and the
    repository would be unreadable."""
    repo = jobs.repository()
    known, mutex = f"soteria:restic:repository:{repo}", f"soteria:restic:init:{repo}"
    if cache.get(known):
        return
    deadline = time.monotonic() + settings.SOTERIA_RESTIC_TIMEOUT_SECONDS
    with _init_lock:
        while not cache.add(mutex, True, timeout=int(settings.SOTERIA_RESTIC_TIMEOUT_SECONDS) + 30):
            if cache.get(known):
                return
            if time.monotonic() > deadline:
                raise UpstreamTimeout("restic", f"another Soteria process is still initialising {repo}")
            time.sleep(0.2)
        try:
            if not cache.get(known) and not restic.repository_exists(repo, creds):
                log.info("initialising restic repository %s", repo)
                restic.init(repo, creds)
            cache.set(known, True, timeout=_REPOSITORY_KNOWN)
        finally:
            cache.delete(mutex)


class ResticDriver:
    name = NAME

    def supports(self, claim: Claim) -> bool:
        """Any claim a pod can mount as a filesystem: restic reads files, whatever the storage."""
        return True

    def describe(self, claims: list[Claim], now: datetime) -> dict[tuple[str, str], VolumeView]:
        bound = [c for c in claims if c.bound]
        if not bound:
            return {}
        by_claim: dict[tuple[str, str], list[Snapshot]] = {}
        for snapshot in restic.snapshots(jobs.repository(), jobs.credentials()):
            key = snapshot_key(snapshot)
            if key:
                by_claim.setdefault(key, []).append(snapshot)
        jobs_by_claim: dict[tuple[str, str], list[Job]] = {}
        backup_jobs = workloads.list_jobs(jobs.selector("backup"))
        for job in backup_jobs:
            jobs_by_claim.setdefault(job_key(job), []).append(job)
        pods = {}
        if any(job.state == FAILED for job in backup_jobs):
            pods = _pods_by_job(workloads.list_pods(jobs.selector("backup")))
        views = {}
        for claim in bound:
            volume = volume_of(claim)
            views[claim.key] = VolumeView(volume=volume, supported=True, driver=NAME, facts=backup_facts(
                volume, by_claim.get(claim.key, []), jobs_by_claim.get(claim.key, []), pods, now))
        return views

    def _claim_jobs(self, claim: Claim, operation: str = "backup") -> list[Job]:
        """The claim's Jobs: one list of Soteria's Jobs in its namespace."""
        return [job for job in workloads.list_jobs(jobs.selector(operation), namespace=claim.pvc.namespace)
                if job_key(job) == claim.key]

    def own_snapshots(self, claim: Claim) -> list[Snapshot]:
        """The claim's snapshots, newest first: selected by both tags, checked again here."""
        found = restic.snapshots(jobs.repository(), jobs.credentials(), tags=jobs.pvc_tags(*claim.key))
        mine = [s for s in found if snapshot_key(s) == claim.key]
        return sorted(mine, key=lambda s: s.time or _EPOCH, reverse=True)

    def list_backups(self, claim: Claim) -> tuple[str, list[BackupRecord]]:
        """Running and failed backup Jobs, then the snapshots, newest first. A snapshot whose Job
        still exists carries its run's summary (read from the Job's log); older ones None.
        Calls: restic snapshots, one list of Jobs, and when there are Jobs one list of pods
        and at most LOGS_READ + SUMMARIES_READ logs."""
        volume = volume_of(claim)
        snapshots = self.own_snapshots(claim)
        claim_jobs = sorted(self._claim_jobs(claim), key=lambda j: j.started or j.created or _EPOCH, reverse=True)
        pods: dict[tuple[str, str], list[Pod]] = {}
        if claim_jobs:
            pods = _pods_by_job(workloads.list_pods(jobs.selector("backup"), namespace=claim.pvc.namespace))
        summaries = _summaries(claim_jobs, pods)
        records = [to_record(s, volume, summary_of(s, summaries)) for s in snapshots]
        logs_left = LOGS_READ
        for job in claim_jobs:
            if job.state == COMPLETE:
                continue
            job_pods = pods.get((job.namespace, job.name), [])
            record = job_record(job, job_pods, volume)
            if job.state == FAILED and logs_left:  # the log's end: restic's whole last words
                logs_left -= 1
                record = _with_log(record, job_pods)
            records.append(record)
        records.sort(key=lambda r: r.created or _EPOCH, reverse=True)
        return volume, records

    def backup(self, claim: Claim, labels: dict[str, str], requested_by: str, dry_run: bool,
               now: datetime) -> BackupResult:
        namespace, pvc = claim.key
        if not claim.bound:
            raise Conflict(f"PVC {namespace}/{pvc} is not bound to a volume (phase {claim.pvc.phase})",
                           code="pvc_not_bound")
        name = names.job_name("backup", pvc, now)
        plan = (
            PlannedCall("restic.initIfMissing", jobs.repository()),
            PlannedCall("kubernetes.createJob", f"{namespace}/{name}",
                        {"image": settings.SOTERIA_RESTIC_IMAGE, "args": jobs.backup_args(namespace, pvc, name, labels),
                         "forget": jobs.forget_args(namespace, pvc) if settings.SOTERIA_RESTIC_FORGET_ARGS else [],
                         "manifest": manifest_jobs.planned(manifest_jobs.since(now))}),
            PlannedCall("kubernetes.createSecret", f"{namespace}/{name}",
                        {"copyOf": f"{settings.SOTERIA_SECRET_NAMESPACE}/{settings.SOTERIA_RESTIC_SECRET_NAME}",
                         "keys": list(restic.CREDENTIAL_KEYS), "ownerReference": f"Job {name}"}),
        )
        creds = jobs.credentials()  # a missing Secret or key is refused before anything exists
        running = [j for j in self._claim_jobs(claim) if j.state == RUNNING]
        if running:
            raise Conflict(f"a backup of PVC {namespace}/{pvc} is already in progress: {running[0].name}",
                           code="backup_in_progress", running=running[0].name)
        result = BackupResult(driver=NAME, namespace=namespace, pvc=pvc, volume=volume_of(claim), backup=name,
                              requested_by=requested_by, dry_run=dry_run, labels=labels, plan=plan)
        if dry_run:
            return result
        ensure_repository(creds)
        body = jobs.backup_job(name, namespace, pvc, labels, requested_by, now, job_bodies.node_for(claim))
        try:
            job = workloads.create_job(namespace, body)
        except Conflict as exc:
            raise Conflict(f"a backup Job {name} already exists: a backup of PVC {namespace}/{pvc} was requested "
                           "in the same second", code="backup_in_progress", running=name) from exc
        except SoteriaError as exc:
            if unanswered(exc):  # the Job may exist all the same (a lost answer): it would wait for its Secret
                _delete_unanswered_job(namespace, name, exc)
            raise
        try:
            kubernetes.create_secret(namespace, jobs.secret_body(job, creds))
        except SoteriaError as exc:
            workloads.delete_job(namespace, name)
            exc.detail += f"; Soteria deleted its Job {name}"
            raise
        return result

    def refuse_foreign_backup_url(self, claim: Claim, backup_url: str) -> None:
        raise InvalidInput("backup_url names a Longhorn backup; restic restores take `snapshot` (a restic snapshot "
                           f"id of PVC {claim.pvc.namespace}/{claim.pvc.name}, or latest)", field="backup_url")

    def plan_restore(self, claim: Claim, snapshot: str, backup_url: str, target_namespace: str,
                     target_pvc: str) -> RestorePlan:
        if backup_url:
            self.refuse_foreign_backup_url(claim, backup_url)
        chosen = restic_restore.choose(self.own_snapshots(claim), snapshot, claim)
        return restic_restore.plan(claim, to_record(chosen, volume_of(claim)), target_namespace, target_pvc,
                                   datetime.now(timezone.utc))

    def restore(self, plan: RestorePlan, claim: Claim, requested_by: str) -> RestorePlan | None:
        return restic_restore.execute(plan, jobs.credentials(), requested_by)

    def delete_backups(self, claim: Claim, names: list[str]) -> None:
        """Forget these snapshots of the claim (retention), never another claim's: every id must be
        one of the claim's own. The data goes at the repository's next `prune`."""
        own = {s.id: s for s in self.own_snapshots(claim)}
        unknown = [n for n in names if n not in own]
        if unknown:
            raise NotFound(f"PVC {claim.pvc.namespace}/{claim.pvc.name} has no restic snapshot {unknown[0]}")
        if names:
            restic.forget(jobs.repository(), jobs.credentials(), names)

    def restore_progress(self, pvcs: list[Pvc]) -> dict[tuple[str, str], RestoreProgress]:
        return restic_restore.progress(pvcs)

    def probe(self, timeout: float) -> Probe:
        """The restic Secret is complete and the repository answers (a missing one is created by
        the first backup, so it is no failure)."""
        creds = jobs.credentials()
        exists = restic.repository_exists(jobs.repository(), creds, timeout=max(timeout, 1.0))
        return Probe(detail="" if exists else "restic repository not initialised yet (the first backup creates it)")


def _delete_unanswered_job(namespace: str, name: str, exc: SoteriaError) -> None:
    try:
        workloads.delete_job(namespace, name)
        exc.detail += f"; Soteria deleted its Job {name} in case the create was carried out"
    except SoteriaError as problem:
        exc.detail += f"; Soteria could not make sure its Job {name} does not exist: {problem.detail}"


def _summaries(claim_jobs: list[Job], pods: dict[tuple[str, str], list[Pod]]) -> dict[str, BackupSummary]:
    """The backup step's summary of the newest Jobs (newest first) whose backup step saved a
    snapshot, by Job name: one log read each, at most SUMMARIES_READ reads (a log without a
    summary, cut or gone, counts)."""
    found: dict[str, BackupSummary] = {}
    reads = 0
    for job in claim_jobs:
        pod = jobs.pod_that_saved(pods.get((job.namespace, job.name), []))
        if pod is None:
            continue
        if reads == SUMMARIES_READ:
            break
        reads += 1
        text = workloads.pod_log(pod.namespace, pod.name, "backup", tail_lines=jobs.SUMMARY_LOG_LINES)
        summary = restic.parse_backup_summary(text)
        if summary is not None:
            found[job.name] = summary
    return found


def _with_log(record: BackupRecord, pods: list[Pod]) -> BackupRecord:
    """A failed Job's error from the end of its failed container's log (the termination message
    may be cut, or empty when restic died before writing); kept as it was when the log is gone."""
    for pod in pods:
        for end in pod.containers:
            if end.exit_code not in (None, 0):
                text = workloads.pod_log(pod.namespace, pod.name, end.container)
                if text.strip():
                    return replace(record, error=f"{end.container}: {jobs.tail(text)}")
    return record


DRIVER = ResticDriver()
