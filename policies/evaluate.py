"""Policy evaluation: back up every PVC whose newest successful backup is older than its
policy's interval, through the same backup service as POST /v1/backup.

Runs every SOTERIA_POLICY_EVAL_SECONDS in the worker, only on the replica holding
the evaluator Lease. A PVC-level policy overrides its namespace's. A stable
per-PVC jitter (up to JITTER_FRACTION of the interval) spreads a namespace's
backups. PVCs with a backup in progress are skipped (a stuck one is reported,
not retried). After the run, retention is applied and each policy's last run
and result are written back to the Secret.
"""

from __future__ import annotations

import hashlib
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import connections

from backups import drivers
from backups import types as t
from backups.services import backup as backup_service
from backups.services import claims as claims_service
from backups.services import inventory
from backups.types import InventoryItem
from soteria_site.core import leases
from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import POLICY_LABEL, label_value

from . import leader, store
from .metrics import POLICY_BACKUPS, POLICY_EVALUATIONS, RETENTION_DELETES
from .types import Policy

log = logging.getLogger(__name__)
JITTER_FRACTION = 0.1


def jitter(namespace: str, pvc: str, interval_seconds: float) -> timedelta:
    """A stable offset for this PVC, from 0 up to JITTER_FRACTION of the interval."""
    digest = hashlib.sha256(f"{namespace}/{pvc}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2 ** 64
    return timedelta(seconds=fraction * JITTER_FRACTION * interval_seconds)


def effective(policies: list[Policy], namespace: str, pvc: str) -> Policy | None:
    """The policy that governs a PVC: its own if any (even disabled), else its namespace's."""
    by_id = {p.id: p for p in policies}
    return by_id.get(f"{namespace}.{pvc}") or by_id.get(namespace)


def next_due(item: InventoryItem, policy: Policy) -> datetime:
    anchor = item.last_backup_at or policy.created_at or datetime.fromtimestamp(0, timezone.utc)
    interval = timedelta(seconds=policy.interval_seconds) if item.last_backup_at else timedelta(0)
    return anchor + interval + jitter(item.namespace, item.pvc, policy.interval_seconds)


@dataclass
class Report:
    leader: bool
    due: list[str] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)  # "ns/pvc" -> backup
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    retention_deleted: dict[str, list[str]] = field(default_factory=dict)


def evaluate(now: datetime | None = None, holder: str | None = None) -> Report:
    now = now or datetime.now(timezone.utc)
    if not leases.acquire(leader.LEASE_NAME, namespace=settings.SOTERIA_SECRET_NAMESPACE,
                          duration_seconds=leader.lease_seconds(), holder=holder, now=now):
        POLICY_EVALUATIONS.labels("not_leader").inc()
        return Report(leader=False)
    try:
        report = _evaluate(now)
    except SoteriaError:
        POLICY_EVALUATIONS.labels("error").inc()
        raise
    POLICY_EVALUATIONS.labels("evaluated").inc()
    return report


def _evaluate(now: datetime) -> Report:
    report = Report(leader=True)
    policies = store.load()
    if not policies:
        return report
    inv = inventory.build(now=now)
    todo: list[tuple[InventoryItem, Policy]] = []
    governed: dict[str, list[InventoryItem]] = {}
    for item in inv.items:
        policy = effective(policies, item.namespace, item.pvc)
        if policy is None or not policy.enabled:
            continue
        key = f"{item.namespace}/{item.pvc}"
        governed.setdefault(policy.id, []).append(item)
        if item.health_reason in (t.NOT_BOUND, t.UNSUPPORTED_DRIVER, t.VOLUME_MISSING):
            report.skipped[key] = item.health_reason
            continue
        if item.in_progress:
            stuck = item.health_reason == t.BACKUP_STUCK
            report.skipped[key] = t.BACKUP_STUCK if stuck else t.BACKUP_IN_PROGRESS
            POLICY_BACKUPS.labels("skipped_stuck" if stuck else "skipped_in_progress").inc()
            continue
        if now >= next_due(item, policy):
            report.due.append(key)
            todo.append((item, policy))
    _run_backups(todo, report)
    _apply_retention(policies, governed, report)
    _record_results(policies, governed, report, now)
    return report


def _run_backups(todo, report: Report) -> None:
    def one(pair):
        item, policy = pair
        key = f"{item.namespace}/{item.pvc}"
        try:
            result = backup_service.backup_pvc(item.namespace, item.pvc, list(policy.tags), f"policy:{policy.id}",
                                               policy_id=policy.id)
        except SoteriaError as exc:
            POLICY_BACKUPS.labels("conflict" if exc.status == 409 else "error").inc()
            log.warning("policy %s: backup of %s failed: %s", policy.id, key, exc.detail)
            return key, None, exc.detail
        finally:
            connections.close_all()
        POLICY_BACKUPS.labels("success").inc()
        return key, result.backup, ""

    if not todo:
        return
    with ThreadPoolExecutor(max_workers=settings.SOTERIA_NAMESPACE_CONCURRENCY) as pool:
        for key, backup, error in pool.map(one, todo):
            if backup:
                report.started[key] = backup
            else:
                report.failed[key] = error


def _apply_retention(policies: list[Policy], governed, report: Report) -> None:
    """Keep the newest `retain` successful backups this policy made; never the last successful one."""
    driver = drivers.current()
    for policy in policies:
        if not policy.enabled or not policy.retain:
            continue
        for item in governed.get(policy.id, []):
            key = f"{item.namespace}/{item.pvc}"
            if key in report.started or item.in_progress or item.health_reason in (
                    t.NOT_BOUND, t.UNSUPPORTED_DRIVER, t.VOLUME_MISSING):
                continue
            try:
                claim = claims_service.get_claim(item.namespace, item.pvc)
                _, records = driver.list_backups(claim)
                completed = [r for r in records if r.completed]
                mine = [r for r in completed if r.labels.get(POLICY_LABEL) == label_value(policy.id)]
                doomed = [r.name for r in mine[policy.retain:] if completed and r.name != completed[0].name]
                if doomed:
                    driver.delete_backups(claim, doomed)
                    report.retention_deleted[key] = doomed
                    RETENTION_DELETES.labels("deleted").inc(len(doomed))
            except SoteriaError as exc:
                RETENTION_DELETES.labels("error").inc()
                log.warning("policy %s: retention for %s failed: %s", policy.id, key, exc.detail)


def _record_results(policies: list[Policy], governed, report: Report, now: datetime) -> None:
    results = {}
    for policy in policies:
        keys = [f"{i.namespace}/{i.pvc}" for i in governed.get(policy.id, [])]
        started = [k for k in keys if k in report.started]
        failed = [k for k in keys if k in report.failed]
        if not policy.enabled:
            continue
        if failed:
            results[policy.id] = ("error", f"{len(failed)} failed: " + "; ".join(
                f"{k}: {report.failed[k]}" for k in failed)[:500])
        elif started:
            results[policy.id] = ("started", f"{len(started)} backup(s) started")
        else:
            results[policy.id] = ("up_to_date", f"{len(keys)} PVC(s) checked, none due")

    def change(current: list[Policy]) -> list[Policy]:
        return [replace(p, last_run_at=now, last_result=results[p.id][0], last_detail=results[p.id][1])
                if p.id in results else p for p in current]

    if results:
        store.update(change)
