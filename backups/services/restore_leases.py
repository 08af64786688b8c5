"""Restores in flight, and the sweep of those whose process was killed.

Before a restore creates anything it takes the Lease `soteria-restore-<target ns>.<target pvc>`
in SOTERIA_SECRET_NAMESPACE (labelled soteria.io/purpose=restore), held by the restore's id and
annotated with what it is about to create: the Longhorn volume and PV, or the restic Job (whose
copied Secret the Job owns), and the target claim. The process carrying it out renews the Lease
every SOTERIA_RESTORE_HEARTBEAT_SECONDS (the kernel's `leases.Heartbeat`, as a restore drill
does) and deletes it when the restore has ended, created or undone. A second restore into the
same claim, from any replica, is refused while the Lease is held.

A process killed in between stops renewing, and the Lease expires after four heartbeats.
`sweep` (the worker, every minute) then finds it. Both drivers create the target claim last: if
the claim exists and is the restore's own, the restore got to its end and nothing is deleted;
otherwise the driver's own undo deletes what the Lease names (PV, then volume; or the Job, whose
Secret goes with it), the source PVC gets a RestoreInterrupted Event, and the Lease is deleted. A
new restore into the same claim sweeps an expired Lease first, so nothing is left behind even
when the next restore comes before the sweeper.
"""

from __future__ import annotations

import logging
import uuid
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core import events, kubernetes, leases, workloads
from soteria_site.core.errors import Conflict, SoteriaError
from soteria_site.core.names import DNS_SUBDOMAIN_MAX, fit_name

from ..drivers import longhorn_restore, restic_jobs, restic_restore
from ..types import RestorePlan
from . import claims

log = logging.getLogger(__name__)
PURPOSE = "soteria.io/purpose"
SELECTOR = f"{PURPOSE}=restore"
LABELS = {PURPOSE: "restore", "app.kubernetes.io/managed-by": "soteria"}
SOURCE, TARGET, DRIVER = "soteria.io/source", "soteria.io/restore-target", "soteria.io/restore-driver"
VOLUME, PV, JOB = "soteria.io/restore-volume", "soteria.io/restore-pv", "soteria.io/restore-job"


def lease_name(target_namespace: str, target_pvc: str) -> str:
    return fit_name(f"soteria-restore-{target_namespace}.{target_pvc}", DNS_SUBDOMAIN_MAX)


def _namespace() -> str:
    return settings.SOTERIA_SECRET_NAMESPACE


def _seconds() -> int:
    return 4 * settings.SOTERIA_RESTORE_HEARTBEAT_SECONDS


def _expired(lease: kubernetes.Lease, now: datetime) -> bool:
    return lease.renewed is None or lease.renewed + timedelta(seconds=lease.duration_seconds) < now


@contextmanager
def in_flight(plan: RestorePlan):
    """Hold the target claim's restore Lease, renewed, while the restore runs; yields its id."""
    restore_id = uuid.uuid4().hex[:12]
    name = lease_name(plan.target_namespace, plan.target_pvc)
    stale = kubernetes.find_lease(_namespace(), name)
    if stale is not None and _expired(stale, datetime.now(timezone.utc)) and leases.seal_holds(stale.annotations):
        _sweep_one(stale)  # a killed restore into this claim: its leftovers go before a new one starts
    annotations = leases.sealed({SOURCE: f"{plan.namespace}/{plan.pvc}",
                                 TARGET: f"{plan.target_namespace}/{plan.target_pvc}",
                                 DRIVER: plan.driver, VOLUME: plan.volume, PV: plan.pv, JOB: plan.job})
    if not leases.acquire(name, namespace=_namespace(), duration_seconds=_seconds(), holder=restore_id,
                          labels=LABELS, annotations=annotations):
        raise Conflict(f"a restore into PVC {plan.target_namespace}/{plan.target_pvc} is already running",
                       code="restore_in_progress")
    try:
        with leases.Heartbeat(restore_id, [name], namespace=_namespace(), duration_seconds=_seconds(),
                              every_seconds=settings.SOTERIA_RESTORE_HEARTBEAT_SECONDS):
            yield restore_id
    finally:
        try:
            leases.release(name, namespace=_namespace(), holder=restore_id)
        except SoteriaError as exc:  # it expires; the sweeper then finds the restore's claim and keeps it
            log.warning("could not release Lease %s of restore %s: %s", name, restore_id, exc.detail)


def sweep(now: datetime | None = None) -> dict:
    """The restores whose Lease expired: finished ones are let be, interrupted ones undone. One
    list of Leases, and a claim read per expired one."""
    now = now or datetime.now(timezone.utc)
    report: dict[str, list[str]] = {"interrupted": [], "completed": [], "deleted": [], "failed": []}
    for lease in kubernetes.list_leases(_namespace(), SELECTOR):
        if not _expired(lease, now):
            continue
        try:
            outcome, deleted, errors = _sweep_one(lease)
        except SoteriaError as exc:  # the next sweep tries again
            report["failed"].append(f"{lease.name}: {exc.detail}")
            continue
        report[outcome].append(lease.annotations.get(TARGET, lease.name))
        report["deleted"] += deleted
        report["failed"] += errors
    if report["interrupted"] or report["failed"]:
        log.warning("restore sweeper: interrupted restores into %s; deleted %s; failed %s",
                    report["interrupted"] or "none", report["deleted"] or "nothing", report["failed"] or "nothing")
    return {k: v for k, v in report.items() if v or k in ("interrupted", "deleted")}


def _sweep_one(lease: kubernetes.Lease) -> tuple[str, list[str], list[str]]:
    a = lease.annotations
    if not leases.seal_holds(a):  # not written by this Soteria: nothing it names is touched
        raise Conflict("its annotations are not sealed with this Soteria's key (SOTERIA_SECRET_KEY); left alone",
                       code="lease_not_sealed")
    target_namespace, _, target_pvc = a.get(TARGET, "").partition("/")
    claim = kubernetes.find_pvc(target_namespace, target_pvc) if target_pvc else None
    if claim is not None and _own(claim, a):
        outcome, cleanup = "completed", {"deleted": [], "errors": []}
    else:
        outcome, cleanup = "interrupted", _undo(a, target_namespace)
        _tell(a, cleanup)
    if not cleanup["errors"]:
        try:
            kubernetes.delete_lease(_namespace(), lease.name, lease.resource_version)
        except Conflict:  # renewed or taken meanwhile: not dead after all, or already swept
            log.info("restore Lease %s changed while it was swept", lease.name)
    return outcome, cleanup["deleted"], cleanup["errors"]


def _own(claim: kubernetes.Pvc, a: dict[str, str]) -> bool:
    """Whether the claim is the one this restore creates last (not another made since)."""
    if a.get(DRIVER) == "restic":
        return bool(a.get(JOB)) and claim.annotations.get(restic_jobs.RESTORE_JOB_ANNOTATION) == a[JOB]
    return bool(a.get(PV)) and claim.volume_name == a[PV]


def _undo(a: dict[str, str], target_namespace: str) -> dict:
    """What the restore created, deleted by its driver's own undo (never a claim: it comes last).
    The Lease's annotations are not trusted to name only what the restore made: a Job is deleted
    only if it is one of Soteria's restore Jobs, and a volume or PV that a claim uses is left
    alone and reported (whoever wrote the Lease, nothing in use is deleted)."""
    if a.get(DRIVER) == "restic":
        job = a.get(JOB, "")
        ours = bool(job) and any(j.name == job for j in workloads.list_jobs(restic_jobs.selector("restore"),
                                                                             target_namespace))
        return restic_restore.undo(target_namespace, [("job", job)] if ours else [])
    volume = a.get(VOLUME, "")
    pv = kubernetes.find_pv(a[PV]) if a.get(PV) else None
    if pv is not None and pv.volume_handle != volume:
        pv = None
    used = claims.in_use(volume, pv)
    if used:
        return {"succeeded": False, "deleted": [], "errors": [f"left alone: {used}"]}
    made = [("volume", volume)] if volume else []
    if pv is not None:
        made.append(("pv", pv.name))
    return longhorn_restore.undo(made)


def _tell(a: dict[str, str], cleanup: dict) -> None:
    namespace, _, pvc = a.get(SOURCE, "").partition("/")
    source = kubernetes.find_pvc(namespace, pvc) if pvc else None
    if source is None:
        return
    done = ", ".join(cleanup["deleted"]) or "nothing was left"
    events.emit_on_pvc(source, "RestoreInterrupted",
                       f"The restore into {a.get(TARGET)} stopped before it created the claim (its process "
                       f"died); deleted: {done}" + (f"; failed: {'; '.join(cleanup['errors'])}"
                                                   if cleanup["errors"] else ""), warning=True)
