"""Restore drills: prove that a PVC's latest backup comes back.

A drill restores the PVC's newest successful backup into a scratch claim in
SOTERIA_DRILL_NAMESPACE (through the driver's own restore), reads every byte of it with a
verification Job, and compares what it found with the manifest recorded when the backup was
taken (backups/manifests.py). Whatever happens, the scratch claim, its PV, the Longhorn
volume or restic restore Job, and the verification Job are deleted afterwards.

One drill per PVC at a time and at most SOTERIA_DRILL_MAX_CONCURRENT in all, across replicas:
a drill holds a Lease for its PVC and one of the slot Leases, renewed every
SOTERIA_DRILL_HEARTBEAT_SECONDS by the worker running it. A drill whose worker died stops
renewing; `sweep` finds it once its Lease has expired, deletes what it created (found by the
label soteria.io/drill and in its record) and records it as interrupted.

Results: passed (restored, fully readable, and it matches the manifest), failed (the restore
failed, a file could not be read, or the copy differs: the differing entries are named),
unverified (restored and readable, but the backup has no manifest to compare with), error
(the drill could not run to the end: an upstream was unavailable, a deadline passed, or its
worker died).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from django.conf import settings

from soteria_site.core import events, kubernetes, leases, workloads
from soteria_site.core.errors import Conflict, NotFound, SoteriaError, UpstreamUnavailable
from soteria_site.core.names import DNS_SUBDOMAIN_MAX, fit_name, job_name, require_dns_label, require_dns_subdomain
from soteria_site.core.timeparse import format_time

from .. import drivers, manifests
from ..clients import longhorn
from ..drivers import drill_jobs, job_bodies, restic_jobs
from ..metrics import RESTORE_DRILLS
from ..types import DRILL_LABEL, BackupRecord, Claim, PlannedCall
from . import claims, drill_cleanup, drill_records

log = logging.getLogger(__name__)
RUNNING = "running"
POLL_SECONDS = 2.0
LEASE_PREFIX = "soteria-drill-"


class AtCapacity(SoteriaError):
    status = 429
    code = "drill_capacity"


@dataclass(frozen=True)
class DrillPlan:
    """What a drill will do, decided before anything is created."""

    id: str
    namespace: str
    pvc: str
    driver: str
    volume: str
    backup: BackupRecord
    manifest_key: str
    has_manifest: bool
    drill_namespace: str
    scratch_pvc: str
    requested_by: str
    dry_run: bool
    calls: tuple[PlannedCall, ...] = ()


def lease_name(namespace: str, pvc: str) -> str:
    return fit_name(f"{LEASE_PREFIX}{namespace}.{pvc}", DNS_SUBDOMAIN_MAX)


def slot_name(index: int) -> str:
    return f"{LEASE_PREFIX}slot-{index}"


def _lease_seconds() -> int:
    return 4 * settings.SOTERIA_DRILL_HEARTBEAT_SECONDS


def _lease_namespace() -> str:
    return settings.SOTERIA_SECRET_NAMESPACE


def manifest_key(driver: str, record: BackupRecord) -> str:
    """Which manifest belongs to a backup: the restic backup Job's name (the snapshot's tag),
    or the Longhorn snapshot's name."""
    if driver == "restic":
        return record.labels.get(restic_jobs.JOB_TAG, "")
    return record.snapshot


def _newest_completed(driver, claim: Claim) -> BackupRecord:
    _volume, records = driver.list_backups(claim)
    completed = [r for r in records if r.completed]
    if not completed:
        namespace, pvc = claim.key
        raise NotFound(f"PVC {namespace}/{pvc} has no successful backup to drill", code="no_backup")
    return max(completed, key=lambda r: r.created or datetime.min.replace(tzinfo=timezone.utc))


def _collect_manifests(namespace: str, pvc: str) -> None:
    """Store the manifests of this PVC's finished backups before one is chosen."""
    from . import manifest_collection

    try:
        manifest_collection.collect(namespace, pvc)
    except SoteriaError as exc:
        log.warning("could not collect the manifests of %s/%s before its drill: %s", namespace, pvc, exc.detail)


def plan(namespace: str, pvc: str, requested_by: str, *, dry_run: bool = False) -> DrillPlan:
    require_dns_label(namespace, "namespace")
    require_dns_subdomain(pvc, "pvc")
    claim = claims.get_claim(namespace, pvc)
    if not claim.bound:
        raise Conflict(f"PVC {namespace}/{pvc} is not bound to a volume (phase {claim.pvc.phase})",
                       code="pvc_not_bound")
    driver = drivers.for_claim(claim)
    if not dry_run:  # a dry run writes nothing: it reports the manifests already stored
        _collect_manifests(namespace, pvc)
    backup = _newest_completed(driver, claim)
    key = manifest_key(driver.name, backup)
    has_manifest = bool(key) and drill_records.load(namespace, pvc).manifest(key) is not None
    now = datetime.now(timezone.utc)
    drill_id = f"{now:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    scratch = fit_name(f"soteria-drill-{pvc}", 63, suffix=f"-{drill_id[-6:]}", dns_label=True)
    drill_ns = settings.SOTERIA_DRILL_NAMESPACE
    restore_plan = driver.plan_restore(claim, backup.name, "", drill_ns, scratch)
    calls = (*restore_plan.calls,
             PlannedCall("kubernetes.createJob", f"{drill_ns}/{job_name('verify', scratch, now)}",
                         {"image": settings.SOTERIA_DRILL_IMAGE, "reads": f"every file of {drill_ns}/{scratch}",
                          "compares": f"manifest {key}" if has_manifest else "nothing: the backup has no manifest"}),
             PlannedCall("cleanup", f"{drill_ns}/{scratch}",
                         {"deletes": "the verification Job, the scratch claim, its PV and volume or restore Job"}))
    return DrillPlan(id=drill_id, namespace=namespace, pvc=pvc, driver=driver.name,
                     volume=restore_plan.source_volume, backup=backup, manifest_key=key, has_manifest=has_manifest,
                     drill_namespace=drill_ns, scratch_pvc=scratch, requested_by=requested_by, dry_run=dry_run,
                     calls=calls)


def start(namespace: str, pvc: str, requested_by: str, *, dry_run: bool = False) -> DrillPlan:
    """POST /v1/restore-drills: plan; unless a dry run, take the PVC's Lease and a slot, record
    the drill as running and queue it for the worker."""
    p = plan(namespace, pvc, requested_by, dry_run=dry_run)
    if dry_run:
        return p
    slot = _admit(p)
    recorded = False
    try:
        drill_records.update(namespace, pvc, lambda r: r.put_drill(_initial(p, slot)))
        recorded = True
        _enqueue(p)
    except Exception as exc:
        if recorded:  # told as it happened, not later as "interrupted" by the sweeper
            try:
                finish(namespace, pvc, p.id, result="error", reason=f"the drill could not be queued: {exc}")
            except SoteriaError as record_exc:
                log.error("drill %s: could not record that it was not queued: %s", p.id, record_exc.detail)
        _release(p.namespace, p.pvc, p.id, slot)
        raise
    return p


def _admit(p: DrillPlan) -> int:
    """Take the PVC's Lease, then a free slot; raise when another drill of the PVC runs or every
    slot is taken. Returns the slot."""
    namespace = _lease_namespace()
    if not leases.acquire(lease_name(p.namespace, p.pvc), namespace=namespace, duration_seconds=_lease_seconds(),
                          holder=p.id):
        lease = kubernetes.find_lease(namespace, lease_name(p.namespace, p.pvc))
        running = lease.holder if lease else ""
        raise Conflict(f"a restore drill of PVC {p.namespace}/{p.pvc} is already running" +
                       (f": {running}" if running else ""), code="drill_in_progress", running=running)
    try:
        for index in range(settings.SOTERIA_DRILL_MAX_CONCURRENT):
            if leases.acquire(slot_name(index), namespace=namespace, duration_seconds=_lease_seconds(),
                              holder=p.id):
                return index
    except SoteriaError:
        _release(p.namespace, p.pvc, p.id, None)
        raise
    leases.release(lease_name(p.namespace, p.pvc), namespace=namespace, holder=p.id)
    raise AtCapacity(f"{settings.SOTERIA_DRILL_MAX_CONCURRENT} restore drills are running, the most at once "
                     "(SOTERIA_DRILL_MAX_CONCURRENT); try again when one has finished",
                     limit=settings.SOTERIA_DRILL_MAX_CONCURRENT)


def _release(namespace: str, pvc: str, drill_id: str, slot: int | None) -> None:
    for name in (lease_name(namespace, pvc), *([slot_name(slot)] if slot is not None else [])):
        try:
            leases.release(name, namespace=_lease_namespace(), holder=drill_id)
        except SoteriaError as exc:  # it expires by itself
            log.warning("could not release Lease %s of drill %s: %s", name, drill_id, exc.detail)


def _enqueue(p: DrillPlan) -> None:
    from django_q.tasks import async_task

    async_task("backups.tasks.run_drill", p.id, p.namespace, p.pvc, task_name=f"restore-drill-{p.id}",
               timeout=settings.SOTERIA_DRILL_TIMEOUT_SECONDS + 120)


def _initial(p: DrillPlan, slot: int) -> dict:
    return {"id": p.id, "namespace": p.namespace, "pvc": p.pvc, "driver": p.driver, "volume": p.volume,
            "backup": p.backup.name, "backup_created": format_time(p.backup.created), "manifest_key": p.manifest_key,
            "started_at": format_time(datetime.now(timezone.utc)), "finished_at": None, "result": RUNNING,
            "reason": "queued", "differences": [], "restored": None, "source": None,
            "requested_by": p.requested_by, "slot": slot,
            "scratch": leases.sealed({"namespace": p.drill_namespace, "pvc": p.scratch_pvc, "volume": "", "pv": "",
                                      "job": "", "drill": p.id, "source": f"{p.namespace}/{p.pvc}",
                                      "backup": p.backup.name}),
            "cleanup": None}


# --- Running a drill (in the worker) ---------------------------------------------------------
def _heartbeat(drill_id: str, names: list[str]) -> leases.Heartbeat:
    """Renews the drill's Leases every SOTERIA_DRILL_HEARTBEAT_SECONDS; `lost` once one of them
    could not be renewed (the sweeper may then take the drill for dead)."""
    return leases.Heartbeat(drill_id, names, namespace=_lease_namespace(), duration_seconds=_lease_seconds(),
                            every_seconds=settings.SOTERIA_DRILL_HEARTBEAT_SECONDS)


class _Stop(Exception):
    """The drill ends early with this result and reason."""

    def __init__(self, result: str, reason: str):
        super().__init__(reason)
        self.result, self.reason = result, reason


def run(drill_id: str, namespace: str, pvc: str) -> dict:
    """Carry a queued drill out (the worker's task). A drill that is not running any more, or
    that another worker has already begun (a redelivered task), is left alone."""
    record = drill_records.load(namespace, pvc)
    drill = next((d for d in record.drills if d.get("id") == drill_id), None)
    if drill is None or drill.get("result") != RUNNING or drill.get("worker_started_at"):
        log.info("drill %s of %s/%s is not waiting to run; skipped", drill_id, namespace, pvc)
        return {"id": drill_id, "skipped": True}
    _patch(namespace, pvc, drill_id, worker_started_at=format_time(datetime.now(timezone.utc)), reason="restoring")
    slot = drill.get("slot")
    names = [lease_name(namespace, pvc), *([slot_name(slot)] if slot is not None else [])]
    deadline = time.monotonic() + settings.SOTERIA_DRILL_TIMEOUT_SECONDS
    outcome: dict = {}
    scratch = dict(drill["scratch"])
    with _heartbeat(drill_id, names) as beat:
        beat.renew()
        try:
            if not drill_cleanup.trusted(drill, scratch):
                scratch = {}
                raise _Stop("error", drill_cleanup.NOT_SEALED)
            outcome = _drill(drill, scratch, beat, deadline)
        except _Stop as stop:
            outcome = {"result": stop.result, "reason": stop.reason}
        except SoteriaError as exc:
            unavailable = isinstance(exc, UpstreamUnavailable) or exc.status in (503, 504)
            outcome = {"result": "error" if unavailable else "failed", "reason": exc.detail}
        except Exception as exc:  # noqa: BLE001 - a drill always ends recorded and cleaned up
            log.exception("drill %s failed unexpectedly", drill_id)
            outcome = {"result": "error", "reason": f"internal error: {exc}"}
        finally:
            outcome["cleanup"] = drill_cleanup.remove_scratch(drill_id, scratch, drill["driver"])
    final = finish(namespace, pvc, drill_id, **outcome)
    _release(namespace, pvc, drill_id, slot)
    return {"id": drill_id, "result": final.get("result")}


def _drill(drill: dict, scratch: dict, beat: leases.Heartbeat, deadline: float) -> dict:
    namespace, pvc, drill_id = drill["namespace"], drill["pvc"], drill["id"]
    _check(beat, deadline, "the drill")  # a drill whose Lease another took over restores nothing
    claim = claims.get_claim(namespace, pvc)
    driver = drivers.for_claim(claim)
    _volume, records = driver.list_backups(claim)
    backup = next((r for r in records if r.name == drill["backup"] and r.completed), None)
    if backup is None:
        raise _Stop("error", f"backup {drill['backup']} of {namespace}/{pvc} no longer exists")
    restore_plan = driver.plan_restore(claim, backup.name, "", scratch["namespace"], scratch["pvc"])
    restore_plan = replace(restore_plan, extra_labels={DRILL_LABEL: drill_id})
    scratch.update(volume=restore_plan.volume, pv=restore_plan.pv, job=restore_plan.job)
    scratch.update(leases.sealed(scratch))
    _patch(namespace, pvc, drill_id, scratch=scratch)  # recorded before anything exists: the sweeper's map
    driver.restore(restore_plan, claim, f"restore drill {drill_id} ({drill['requested_by']})")
    restore_error = _wait_restored(driver, scratch, beat, deadline)
    if restore_error and drill["driver"] != "restic":
        raise _Stop("failed", f"the restore failed: {restore_error}")
    _patch(namespace, pvc, drill_id, reason="verifying")
    _collect_manifests(namespace, pvc)  # a backup Job may have finished its manifest since the plan
    source = drill_records.load(namespace, pvc).manifest(drill.get("manifest_key") or "")
    restored = _verify(drill, scratch, source, beat, deadline)
    summary = {"files": restored.files, "bytes": restored.bytes, "digest": restored.digest,
               "seconds": restored.seconds}
    base = {"restored": summary, "source": ({"files": source.files, "bytes": source.bytes, "digest": source.digest,
                                             "changed_files": source.changed_files} if source else None)}
    if source is not None:
        differences = manifests.compare(source, restored)
    else:
        differences = manifests.compare(manifests.Manifest(files=restored.files, bytes=restored.bytes,
                                                           digest=""), restored)
    if restore_error:
        return {**base, "result": "failed", "reason": f"the restore failed: {restore_error}",
                "differences": differences}
    if differences:
        what = "the backup's manifest" if source else "a readable copy"
        return {**base, "result": "failed", "differences": differences,
                "reason": f"{len(differences)} difference{'s' if len(differences) != 1 else ''} from {what}"}
    if source is not None and not source.sample and source.changed_files:
        return {**base, "result": "unverified", "differences": [],
                "reason": f"restored and read in full ({restored.files} files, {restored.bytes} bytes), but every one "
                          f"of the backup's {source.changed_files} files changed around its point in time, so its "
                          "manifest has nothing to compare (docs/drills.md, the 30-second margin)"}
    if source is None:
        return {**base, "result": "unverified", "differences": [],
                "reason": f"restored and read in full ({restored.files} files, {restored.bytes} bytes), but backup "
                          f"{backup.name} has no manifest to compare with (taken before Soteria recorded "
                          "manifests, outside Soteria, or its manifest Job failed)"}
    compared = ("file count, total size" if not source.changed_files
                else f"file count ({source.changed_files} changed around the backup's time left out)")
    return {**base, "result": "passed", "differences": [],
            "reason": f"restored {restored.files} files, {restored.bytes} bytes, all readable; {compared} and "
                      f"{len(source.sample)} sampled files match the backup's manifest"}


def _check(beat: leases.Heartbeat, deadline: float, what: str) -> None:
    if beat.lost:
        raise _Stop("error", beat.lost)
    if time.monotonic() > deadline:
        raise _Stop("error", f"{what} did not finish within SOTERIA_DRILL_TIMEOUT_SECONDS "
                             f"({settings.SOTERIA_DRILL_TIMEOUT_SECONDS} s)")


def _wait_restored(driver, scratch: dict, beat: leases.Heartbeat, deadline: float) -> str:
    """Until the driver reports the scratch claim restored (""), or failed (its reason)."""
    while True:
        _check(beat, deadline, "the restore")
        pvc = kubernetes.find_pvc(scratch["namespace"], scratch["pvc"])
        if pvc is not None:
            progress = driver.restore_progress([pvc]).get((pvc.namespace, pvc.name))
            if progress is not None and progress.state == "done":
                return ""
            if progress is not None and progress.state in ("failed", "volume missing", "unknown"):
                return progress.detail or progress.state
        time.sleep(POLL_SECONDS)


def _verify(drill: dict, scratch: dict, source: manifests.Manifest | None, beat: leases.Heartbeat,
            deadline: float) -> manifests.Manifest:
    """Run the verification Job over the scratch claim and read its manifest."""
    namespace = scratch["namespace"]
    name = job_name("verify", scratch["pvc"], datetime.now(timezone.utc))
    expect = [e.path for e in source.sample] if source else []
    seconds_left = max(60, int(deadline - time.monotonic()))
    workloads.create_job(namespace, drill_jobs.verify_job(name, namespace, scratch["pvc"], drill["id"],
                                                          drill["driver"], expect, seconds_left))
    selector = f"{DRILL_LABEL}={drill['id']},{job_bodies.OPERATION_LABEL}={drill_jobs.OPERATION}"
    while True:
        _check(beat, deadline, "the verification Job")
        job = next((j for j in workloads.list_jobs(selector, namespace=namespace) if j.name == name), None)
        if job is None:
            raise _Stop("error", f"the verification Job {namespace}/{name} disappeared")
        if job.state in (workloads.COMPLETE, workloads.FAILED):
            break
        time.sleep(POLL_SECONDS)
    pods = workloads.list_pods(f"job-name={name}", namespace=namespace)
    text = ""
    for pod in pods:
        text = workloads.pod_log(namespace, pod.name, drill_jobs.CONTAINER, tail_lines=2, limit_bytes=2 * 1024 * 1024)
        if manifests.FORMAT in text:
            break
    try:
        return manifests.parse_output(text)
    except manifests.ManifestUnreadable:
        why = restic_jobs.failure_text(job, pods) if job.state == workloads.FAILED else "it printed no manifest"
        raise _Stop("failed", f"the verification Job {name} could not read the restored claim: {why}") from None


# --- The sweeper (the clean-up itself: drill_cleanup) -------------------------------------------
def sweep() -> dict:
    """Drills whose worker died (their Lease expired) are cleaned up and recorded as interrupted;
    objects labelled soteria.io/drill of no running drill are deleted. One list each of records,
    Jobs, claims and PVs, plus a Lease read per running drill.

    The objects are listed before the records are read: a drill creates its objects only after
    its record says it is running, so one that starts while the sweeper runs is seen alive."""
    jobs = workloads.list_jobs(DRILL_LABEL)
    scratch_claims = kubernetes.list_pvcs_labelled(DRILL_LABEL)
    pvs = kubernetes.list_pvs_labelled(DRILL_LABEL)
    alive: set[str] = set()
    swept = []
    for (namespace, pvc), record in drill_records.load_all().items():
        for drill in record.drills:
            if drill.get("result") != RUNNING:
                continue
            if leases.held_by(lease_name(namespace, pvc), namespace=_lease_namespace(), holder=drill["id"]):
                alive.add(drill["id"])
                continue
            trusted = drill_cleanup.trusted(drill, drill.get("scratch") or {})
            cleanup = drill_cleanup.remove_scratch(drill["id"], drill["scratch"] if trusted else {},
                                                   drill.get("driver", ""))
            if not trusted:
                cleanup = {**cleanup, "succeeded": False, "errors": [*cleanup["errors"], drill_cleanup.NOT_SEALED]}
            began = drill.get("worker_started_at")
            finish(namespace, pvc, drill["id"], result="error", cleanup=cleanup,
                   reason="interrupted: the worker running the drill stopped" if began else
                   "interrupted: no worker took the drill up before its Lease expired")
            _release(namespace, pvc, drill["id"], drill.get("slot"))
            swept.append(drill["id"])
    orphans: list[str] = []
    failed: list[str] = []
    keep = alive | set(swept)  # a swept drill's objects were just deleted with it

    def delete(what: str, fn, *args) -> None:  # one failure must not stop the rest (next sweep retries)
        try:
            fn(*args)
            orphans.append(what)
        except SoteriaError as exc:
            failed.append(f"{what}: {exc.detail}")

    for job in jobs:
        if job.labels.get(DRILL_LABEL) not in keep:
            delete(f"job {job.namespace}/{job.name}", workloads.delete_job, job.namespace, job.name)
    for claim in scratch_claims:
        if claim.labels.get(DRILL_LABEL) not in keep:
            delete(f"pvc {claim.namespace}/{claim.name}", kubernetes.delete_pvc, claim.namespace, claim.name)
    for pv in pvs:
        if pv.labels.get(DRILL_LABEL) not in keep:
            delete(f"pv {pv.name}", kubernetes.delete_pv, pv.name)
            if pv.csi_driver == kubernetes.LONGHORN_CSI_DRIVER and pv.volume_handle:
                delete(f"volume {pv.volume_handle}", longhorn.delete_volume, pv.volume_handle)
    if swept or orphans or failed:
        log.warning("drill sweeper: interrupted drills %s; deleted %s; failed %s", swept or "none",
                    orphans or "nothing", failed or "nothing")
    return {"interrupted": swept, "deleted": orphans, **({"failed": failed} if failed else {})}


# --- Records ---------------------------------------------------------------------------------
def _patch(namespace: str, pvc: str, drill_id: str, **fields) -> None:
    def change(record: drill_records.Record) -> None:
        for drill in record.drills:
            if drill.get("id") == drill_id:
                drill.update(fields)

    drill_records.update(namespace, pvc, change)


def finish(namespace: str, pvc: str, drill_id: str, *, result: str, reason: str, cleanup: dict | None = None,
           differences: list[str] | None = None, restored: dict | None = None, source: dict | None = None) -> dict:
    """Record a drill's end, count it, and tell it as an Event on the PVC."""
    if cleanup is not None and not cleanup.get("succeeded", True):
        reason += f" (cleanup FAILED: {'; '.join(cleanup.get('errors') or [])})"
    done: dict = {}

    def change(record: drill_records.Record) -> None:
        done.clear()
        for drill in record.drills:
            if drill.get("id") == drill_id and drill.get("result") == RUNNING:  # the first end counts
                drill.update(result=result, reason=reason, cleanup=cleanup, differences=differences or [],
                             finished_at=format_time(datetime.now(timezone.utc)))
                if restored is not None:
                    drill["restored"] = restored
                if source is not None:
                    drill["source"] = source
                done.update(drill)

    drill_records.update(namespace, pvc, change)
    if done:
        RESTORE_DRILLS.labels(done.get("driver") or "unknown", result).inc()
        _tell(namespace, pvc, done)
    return done


def _tell(namespace: str, pvc: str, drill: dict) -> None:
    claim = kubernetes.find_pvc(namespace, pvc)
    if claim is None:
        return
    reason = {"passed": "RestoreDrillPassed", "failed": "RestoreDrillFailed", "unverified": "RestoreDrillUnverified",
              "error": "RestoreDrillError"}[drill["result"]]
    detail = drill["reason"]
    if drill.get("differences"):
        detail += ": " + "; ".join(drill["differences"][:5])
    events.emit_on_pvc(claim, reason, f"Restore drill {drill['id']} of backup {drill['backup']}: {detail}",
                       warning=drill["result"] in ("failed", "error"))
