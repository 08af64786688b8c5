"""Restore a PVC's backup into a new PVC, or a whole namespace into another.

An existing target PVC is never overwritten (409 naming it); a missing target
namespace is 404 (Soteria does not create namespaces). Conflicts are found in
planning, before any volume is created; `dry_run` returns the plan and calls
nothing that mutates.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

from soteria_site.core import events, kubernetes
from soteria_site.core.errors import Conflict, InvalidInput, SoteriaError
from soteria_site.core.names import dns_subdomain_error, require_dns_label, require_dns_subdomain
from soteria_site.core.timeparse import format_time

from .. import drivers
from .. import types as t
from ..types import DRILL_LABEL, RESTORED_FROM, NamespaceRestoreResult, RestoreOutcome, RestorePlan, RestoreResult, RestoreStatus
from . import claims, inventory_cache
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
    """POST /v1/restores/namespace: plan every bound PVC (conflicts included) before creating anything."""
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
            outcomes = _execute_all(driver, outcomes, {c.pvc.name: c for c in claim_list}, requested_by)
        result = NamespaceRestoreResult(driver=driver.name, namespace=namespace, target_namespace=target_namespace,
                                        target_prefix=target_prefix, requested_by=requested_by, dry_run=dry_run,
                                        results=outcomes)
        counted_as.result = batch_result(dry_run, result.totals["failed"], result.totals["restored"])
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


def _execute_all(driver, outcomes, claim_by_name, requested_by) -> list[RestoreOutcome]:
    def one(outcome: RestoreOutcome) -> RestoreOutcome:
        if outcome.status != "planned":
            return outcome
        try:
            with counted(RESTORE_REQUESTS, dry_run=False) as counted_as:
                counted_as.driver = outcome.plan.driver
                plan = _execute(driver, outcome.plan, claim_by_name[outcome.pvc], requested_by)
        except SoteriaError as exc:
            return RestoreOutcome(outcome.pvc, outcome.target_pvc, "failed", exc.code, exc.detail, outcome.plan)
        except Exception as exc:  # noqa: BLE001 - one PVC must not stop the others
            log.exception("restore of %s failed", outcome.pvc)
            return RestoreOutcome(outcome.pvc, outcome.target_pvc, "failed", "internal_error", str(exc), outcome.plan)
        finally:
            connections.close_all()
        return RestoreOutcome(outcome.pvc, outcome.target_pvc, "restored", detail=plan.size_note, plan=plan)

    with ThreadPoolExecutor(max_workers=settings.SOTERIA_NAMESPACE_CONCURRENCY) as pool:
        return list(pool.map(one, outcomes))


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
