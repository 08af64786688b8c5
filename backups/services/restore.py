"""Restore a PVC's backup into a new PVC, or a whole namespace into another.

An existing target PVC is never overwritten (409 naming it); a missing target
namespace is 404 (Soteria does not create namespaces). Conflicts are found in
planning, before any volume is created; `dry_run` returns the plan and calls
nothing that mutates. A namespace restore's planned PVCs are created by the worker
(a queued task), not while the request waits.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import datetime

from django.conf import settings
from django.db import connections

from soteria_site.core import events, kubernetes
from soteria_site.core.errors import Conflict, InvalidInput, NotFound, SoteriaError
from soteria_site.core.names import dns_subdomain_error, fit_name, require_dns_label, require_dns_subdomain
from soteria_site.core.timeparse import format_time

from .. import drivers
from .. import types as t
from ..types import DRILL_LABEL, RESTORED_FROM, NamespaceRestoreResult, RestoreOutcome, RestorePlan, RestoreResult, RestoreStatus
from . import claims, inventory_cache, restore_batches, restore_leases
from .backup import pvc_lock
from .counting import NAMESPACE_RESTORE_REQUESTS, RESTORE_REQUESTS, batch_result, counted

log = logging.getLogger(__name__)


def _refuse_existing_target(namespace: str, name: str) -> None:
    existing = kubernetes.find_pvc(namespace, name)
    if existing is not None:
        raise Conflict(f"target PVC {namespace}/{name} already exists; Soteria never overwrites a PVC",
                       code="target_exists", existing=f"{namespace}/{name}")


def restore_pvc(namespace: str, pvc: str, target_pvc: str, requested_by: str, *, target_namespace: str = "",
                snapshot: str = "latest", backup_url: str = "", dry_run: bool = False) -> RestoreResult:
    """POST /v1/restores: validate, plan, refuse conflicts, then create volume, PV and PVC."""
    with counted(RESTORE_REQUESTS, dry_run) as counted_as:
        require_dns_label(namespace, "namespace")
        require_dns_subdomain(pvc, "pvc")
        require_dns_subdomain(target_pvc, "target_pvc")
        target_namespace = target_namespace or namespace
        require_dns_label(target_namespace, "target_namespace")
        if backup_url and snapshot not in ("", "latest"):
            raise InvalidInput("give either snapshot or backup_url, not both", field="backup_url")
        driver = drivers.current()
        claim = claims.get_claim(namespace, pvc)
        counted_as.driver = drivers.for_claim(claim).name
        if backup_url:  # refused before anything else is looked up
            driver.refuse_foreign_backup_url(claim, backup_url)
        claims.require_namespace(target_namespace, "target_namespace")
        _refuse_existing_target(target_namespace, target_pvc)
        plan = driver.plan_restore(claim, snapshot, backup_url, target_namespace, target_pvc)
        if not dry_run:
            plan = _execute(driver, plan, claim, requested_by)
    return RestoreResult(plan=plan, requested_by=requested_by, dry_run=dry_run)


def _execute(driver, plan: RestorePlan, claim: claims.Claim, requested_by: str) -> RestorePlan:
    """Carry the plan out; returns it as carried out (a driver may change sizes)."""
    with pvc_lock(plan.target_namespace, plan.target_pvc, operation="restore"):
        # Checked again under the lock: another restore may have just finished.
        _refuse_existing_target(plan.target_namespace, plan.target_pvc)
        try:
            with restore_leases.in_flight(plan):  # swept, if this process dies before the restore ends
                plan = driver.restore(plan, claim, requested_by) or plan
        except SoteriaError as exc:
            events.emit_on_pvc(claim.pvc, "RestoreFailed",
                         f"Restore of backup {plan.backup.name} into {plan.target_namespace}/{plan.target_pvc} "
                         f"requested by {requested_by} failed: {exc.detail}", warning=True)
            raise
    inventory_cache.record_restore(plan.target_namespace, plan.target_pvc, plan.volume, plan.driver)
    created_at = format_time(plan.backup.created) or "unknown time"
    events.emit_on_pvc(claim.pvc, "RestoreStarted",
                 f"Backup {plan.backup.name} ({created_at}) is being restored into "
                 f"{plan.target_namespace}/{plan.target_pvc} (volume {plan.volume}), requested by {requested_by}")
    target = kubernetes.find_pvc(plan.target_namespace, plan.target_pvc)
    if target is not None:
        events.emit_on_pvc(target, "RestoredFromBackup",
                     f"Created from backup {plan.backup.name} of {plan.namespace}/{plan.pvc} ({created_at}), "
                     f"requested by {requested_by}; " + (f"restic Job {plan.job} is restoring it" if plan.job
                                                         else f"Longhorn is restoring volume {plan.volume}"))
    return plan


def restore_namespace(namespace: str, target_namespace: str, target_prefix: str, requested_by: str, *,
                      snapshot: str = "", dry_run: bool = False) -> NamespaceRestoreResult:
    """POST /v1/restores/namespace: plan every bound PVC (conflicts included) before creating anything.

    Planning is answered at once; unless a dry run, the planned PVCs are then handed to the
    worker as one queued task (`restore_planned`), so the answer does not wait for hundreds of
    volumes: each planned PVC is `queued`, and once the worker has created its claim it shows
    in GET /v1/restores with Longhorn's progress, as every restored claim does."""
    with counted(NAMESPACE_RESTORE_REQUESTS, dry_run) as counted_as:
        require_dns_label(namespace, "namespace")
        target_namespace = target_namespace or namespace
        require_dns_label(target_namespace, "target_namespace")
        if target_namespace == namespace and not target_prefix:
            raise InvalidInput("restoring into the source namespace needs a target_prefix", field="target_prefix")
        driver = drivers.current()
        claims.require_namespace(namespace)
        claims.require_namespace(target_namespace, "target_namespace")
        claim_list = claims.list_batch(namespace)
        taken = {p.name for p in kubernetes.list_pvcs(target_namespace)}
        outcomes = [_plan_one(driver, claim, target_namespace, target_prefix, snapshot, taken)
                    for claim in claim_list]
        if not dry_run:
            outcomes = _queue(namespace, outcomes, requested_by)
        result = NamespaceRestoreResult(driver=driver.name, namespace=namespace, target_namespace=target_namespace,
                                        target_prefix=target_prefix, requested_by=requested_by, dry_run=dry_run,
                                        results=outcomes)
        totals = result.totals
        counted_as.result = batch_result(dry_run, totals["failed"], totals["queued"] + totals["restored"])
    return result


def _plan_one(driver, claim, target_namespace, prefix, snapshot, taken) -> RestoreOutcome:
    name = claim.pvc.name
    target = f"{prefix}{name}"
    problem = dns_subdomain_error(target)
    if problem:
        return RestoreOutcome(name, target, "skipped", "invalid_target_name", f"target name {problem}")
    if not claim.bound:
        return RestoreOutcome(name, target, "skipped", "pvc_not_bound", f"{t.NOT_BOUND} (phase {claim.pvc.phase})")
    if not driver.supports(claim):
        return RestoreOutcome(name, target, "skipped", "unsupported_driver", f"not a {driver.name} volume")
    if target in taken:
        return RestoreOutcome(name, target, "skipped", "target_exists",
                              f"target PVC {target_namespace}/{target} already exists")
    try:
        plan = driver.plan_restore(claim, snapshot, "", target_namespace, target)
    except SoteriaError as exc:
        return RestoreOutcome(name, target, "skipped" if exc.status in (404, 409) else "failed", exc.code, exc.detail)
    return RestoreOutcome(name, target, "planned", plan=plan)


def _queue(namespace: str, outcomes: list[RestoreOutcome], requested_by: str) -> list[RestoreOutcome]:
    """Hand the planned PVCs to the worker as one task; each is then `queued` (or `failed`,
    every one of them, when the queue cannot be written)."""
    plans = [o.plan for o in outcomes if o.status == "planned"]
    if not plans:
        return outcomes
    try:
        batches = restore_batches.record(namespace, plans[0].target_namespace, requested_by, plans)
        try:
            for batch_id, holder, batch_plans in batches:
                _enqueue(namespace, requested_by, batch_plans, batch_id, holder)
        except Exception:  # none is run: they are given back (those queued find theirs gone)
            for batch_id, holder, _ in batches:
                restore_batches.discard(batch_id, holder)
            raise
    except Exception as exc:  # noqa: BLE001 - the queue is the database: say so per PVC, as for any failure
        log.exception("the restores of namespace %s could not be queued", namespace)
        return [replace(o, status="failed", error="not_queued", detail=f"the restore could not be queued: {exc}")
                if o.status == "planned" else o for o in outcomes]
    return [replace(o, status="queued") if o.status == "planned" else o for o in outcomes]


def _enqueue(namespace: str, requested_by: str, plans: list[RestorePlan] | None, batch_id: str, holder: str) -> None:
    from django_q.tasks import async_task

    async_task("backups.tasks.restore_planned", namespace, requested_by, plans, batch_id, holder,
               task_name=fit_name(f"namespace-restore-{namespace}-{time.time_ns()}", 100),
               group=f"namespace-restore-{namespace}")


def resume_batches(now: datetime | None = None) -> dict:
    """The restore sweep's part for namespace restores whose process died (restore_batches)."""
    return restore_batches.sweep(lambda batch, holder: _enqueue(batch.namespace, batch.requested_by, None,
                                                                batch.id, holder), now)


def restore_planned(namespace: str, requested_by: str, plans: list[RestorePlan] | None, batch_id: str = "",
                    holder: str = "") -> tuple[str, list[RestoreOutcome]]:
    """In the worker: carry out a namespace restore's plans, holding its batch's Lease (see
    restore_batches); `plans` None: a batch carried on after its process died, planned again
    from its record. A task queued without a batch (by an older Soteria) just runs its plans.
    Returns the target namespace and each PVC's outcome (none when there was nothing to do)."""
    if not batch_id:
        plans = plans or []
        return (plans[0].target_namespace if plans else "",
                _restore_all(namespace, requested_by, plans, claims.list_batch(namespace), []))
    with restore_batches.held(batch_id, holder) as batch:
        if batch is None:
            return "", []
        try:
            claim_list = claims.list_batch(namespace)
        except SoteriaError as exc:
            if exc.status >= 500:  # passing: the batch's Lease expires and the sweep queues it again
                raise
            return batch.target_namespace, [RestoreOutcome(e.pvc, e.target_pvc, "failed", exc.code, exc.detail)
                                            for e in batch.entries]
        if plans is None:
            plans, done = _carry_on(batch, claim_list)
        else:
            done = []
        return batch.target_namespace, _restore_all(namespace, requested_by, plans, claim_list, done)


def _carry_on(batch: restore_batches.Batch, claim_list: list[claims.Claim]
              ) -> tuple[list[RestorePlan], list[RestoreOutcome]]:
    """A batch whose process died, planned again: each PVC whose target claim does not exist
    yet, from the backup chosen the first time. A target there from the same source was
    restored before the process died; any other is a conflict."""
    log.warning("restore batch %s of namespace %s (%d PVCs) is carried on after its process died",
                batch.id, batch.namespace, len(batch.entries))
    driver = drivers.current()
    claim_by_name = {c.pvc.name: c for c in claim_list}
    existing = {p.name: p for p in kubernetes.list_pvcs(batch.target_namespace)}
    plans, done = [], []
    for entry in batch.entries:
        target = existing.get(entry.target_pvc)
        if target is not None:
            if target.annotations.get("soteria.io/source") == f"{batch.namespace}/{entry.pvc}":
                done.append(RestoreOutcome(entry.pvc, entry.target_pvc, "restored",
                                           detail="restored before the batch's process died"))
            else:
                done.append(RestoreOutcome(entry.pvc, entry.target_pvc, "failed", "target_exists",
                                           f"target PVC {batch.target_namespace}/{entry.target_pvc} already exists"))
            continue
        claim = claim_by_name.get(entry.pvc)
        try:
            if claim is None:
                raise NotFound(f"source PVC {batch.namespace}/{entry.pvc} no longer exists", code="pvc_not_found")
            plans.append(driver.plan_restore(claim, entry.backup, "", batch.target_namespace, entry.target_pvc))
        except SoteriaError as exc:
            done.append(RestoreOutcome(entry.pvc, entry.target_pvc, "failed", exc.code, exc.detail))
    return plans, done


def _restore_all(namespace: str, requested_by: str, plans: list[RestorePlan], claim_list: list[claims.Claim],
                 done: list[RestoreOutcome]) -> list[RestoreOutcome]:
    """Restore `plans`, at most SOTERIA_NAMESPACE_CONCURRENCY at a time. Each PVC is counted and
    told by Events as a single restore is; one failing never stops the others. The source
    claims were read again (one list): a source gone since the plan fails its own restore only."""
    claim_by_name = {c.pvc.name: c for c in claim_list}
    driver = drivers.current()

    def one(plan: RestorePlan) -> RestoreOutcome:
        try:
            with counted(RESTORE_REQUESTS, dry_run=False) as counted_as:
                counted_as.driver = plan.driver
                claim = claim_by_name.get(plan.pvc)
                if claim is None:
                    raise NotFound(f"source PVC {namespace}/{plan.pvc} no longer exists", code="pvc_not_found")
                done = _execute(driver, plan, claim, requested_by)
        except SoteriaError as exc:
            return RestoreOutcome(plan.pvc, plan.target_pvc, "failed", exc.code, exc.detail, plan)
        except Exception as exc:  # noqa: BLE001 - one PVC must not stop the others
            log.exception("restore of %s/%s failed", namespace, plan.pvc)
            return RestoreOutcome(plan.pvc, plan.target_pvc, "failed", "internal_error", str(exc), plan)
        finally:
            connections.close_all()
        return RestoreOutcome(plan.pvc, plan.target_pvc, "restored", detail=done.size_note, plan=done)

    with ThreadPoolExecutor(max_workers=settings.SOTERIA_NAMESPACE_CONCURRENCY) as pool:
        return done + list(pool.map(one, plans))


def _shown_source(source: str, visible: frozenset[str] | None) -> str:
    """The `namespace/pvc` a restore came from, blank when the caller may not view that namespace."""
    if visible is None or source.partition("/")[0] in visible:
        return source
    return ""


def restore_status(namespace: str | None = None, visible: frozenset[str] | None = None) -> list[RestoreStatus]:
    """Every PVC Soteria restored, with the driver's progress (a constant number of calls whatever
    their number). With `visible`, only PVCs in those namespaces, and a source outside them left blank."""
    if namespace:
        require_dns_label(namespace, "namespace")
    restored = sorted((p for p in kubernetes.list_pvcs_labelled(f"{RESTORED_FROM},!{DRILL_LABEL}")
                       if namespace in (None, p.namespace)
                       and (visible is None or p.namespace in visible)), key=lambda p: (p.namespace, p.name))
    if not restored:
        return []
    progress = drivers.current().restore_progress(restored)
    return [RestoreStatus(namespace=pvc.namespace, pvc=pvc.name, volume=pvc.volume_name or "",
                          source=_shown_source(pvc.annotations.get("soteria.io/source", ""), visible),
                          backup=pvc.labels.get("soteria.io/backup", ""), state=p.state, progress=p.progress,
                          detail=p.detail)
            for pvc in restored for p in [progress[(pvc.namespace, pvc.name)]]]
