"""Policy evaluation: back up every PVC whose newest successful backup is older than its
policy's interval, through the same backup service as POST /v1/backup.

Runs every SOTERIA_POLICY_EVAL_SECONDS in the worker, only on the replica holding
the evaluator Lease. A PVC-level policy overrides its namespace's. A stable
per-PVC jitter (up to JITTER_FRACTION of the interval) spreads a namespace's
backups. PVCs with a backup in progress are skipped (a stuck one is reported,
not retried). After the run, retention is applied and each policy's last run
and result are written back to the Secret.

A policy with verify_every_hours also starts a restore drill (backups/services/drills.py)
of each governed PVC with a successful backup whose newest drill, whatever its result,
started more than verify_every_hours ago, or that never had one. The drill service refuses
a PVC already being drilled, more drills than SOTERIA_DRILL_MAX_CONCURRENT, or a PVC
without a backup: those are skipped and tried again at the next evaluation.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.db import connections

from backups import drivers
from backups import types as t
from backups.services import backup as backup_service
from backups.services import claims as claims_service
from backups.services import drill_records, drills, inventory
from backups.types import InventoryItem
from soteria_site.core import leases
from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import POLICY_LABEL, label_value
from soteria_site.core.timeparse import parse_time

from . import leader, store
from .metrics import POLICY_BACKUPS, POLICY_DRILLS, POLICY_EVALUATIONS, RETENTION_DELETES
from .types import Policy

log = logging.getLogger(__name__)
JITTER_FRACTION = 0.1


def jitter(namespace: str, pvc: str, interval_seconds: float) -> timedelta:
    """A stable offset for this PVC, from 0 up to JITTER_FRACTION of the interval."""
    digest = hashlib.sha256(f"{namespace}/{pvc}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2 ** 64
    return timedelta(seconds=fraction * JITTER_FRACTION * interval_seconds)


def policy_index(policies: list[Policy]) -> dict[str, Policy]:
    """The policies by id: give it to `effective` when asking for many PVCs, so the index is
    built once and not once a PVC (10,000 PVCs x 1,000 policies was 10 million insertions)."""
    return {p.id: p for p in policies}


def effective(policies: list[Policy] | Mapping[str, Policy], namespace: str, pvc: str) -> Policy | None:
    """The policy that governs a PVC: its own if any (even disabled), else its namespace's.
    `policies` is the list, or its `policy_index`."""
    by_id = policies if isinstance(policies, Mapping) else policy_index(policies)
    return by_id.get(f"{namespace}.{pvc}") or by_id.get(namespace)


def next_due(item: InventoryItem, policy: Policy) -> datetime:
    anchor = item.last_backup_at or policy.created_at or datetime.fromtimestamp(0, timezone.utc)
    interval = timedelta(seconds=policy.interval_seconds) if item.last_backup_at else timedelta(0)
    return anchor + interval + jitter(item.namespace, item.pvc, policy.interval_seconds)


# The drill service's refusals that the next evaluation simply tries again.
DRILL_REFUSALS = ("drill_in_progress", "drill_capacity", "no_backup")

# (namespace, pvc) -> when its newest restore drill started (any result, running included).
NewestDrills = dict[tuple[str, str], datetime]


def newest_drill_starts() -> NewestDrills:
    """When each PVC's newest restore drill started, from one list of the drill records."""
    found = {}
    for key, record in drill_records.load_all().items():
        starts = [when for d in record.drills if (when := parse_time(d.get("started_at")))]
        if starts:
            found[key] = max(starts)
    return found


def next_drill_due(item: InventoryItem, policy: Policy, newest: NewestDrills) -> datetime:
    """When the PVC is due for a restore drill: verify_every_hours after its newest drill
    started, or at once (the epoch) when it never had one."""
    started = newest.get((item.namespace, item.pvc))
    if started is None:
        return datetime.fromtimestamp(0, timezone.utc)
    return started + timedelta(hours=policy.verify_every_hours or 0)


@dataclass
class Report:
    leader: bool
    due: list[str] = field(default_factory=list)
    started: dict[str, str] = field(default_factory=dict)  # "ns/pvc" -> backup
    failed: dict[str, str] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    retention_deleted: dict[str, list[str]] = field(default_factory=dict)
    drills_started: dict[str, str] = field(default_factory=dict)  # "ns/pvc" -> drill id
    drills_skipped: dict[str, str] = field(default_factory=dict)  # "ns/pvc" -> the refusal's code
    drills_failed: dict[str, str] = field(default_factory=dict)


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
    by_id = policy_index(policies)
    for item in inv.items:
        policy = effective(by_id, item.namespace, item.pvc)
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
    _start_drills(policies, governed, report, now)
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


def _start_drills(policies: list[Policy], governed, report: Report, now: datetime) -> None:
    """Start the restore drills that are due, the longest overdue first. After a refusal for
    capacity the rest wait for the next evaluation without asking again."""
    wanted = [(item, policy) for policy in policies if policy.enabled and policy.verify_every_hours
              for item in governed.get(policy.id, [])
              if item.backup_count and item.health_reason not in (t.NOT_BOUND, t.UNSUPPORTED_DRIVER,
                                                                  t.VOLUME_MISSING)]
    if not wanted:
        return
    try:
        newest = newest_drill_starts()
    except SoteriaError as exc:
        log.warning("policy drills not started: the drill records cannot be read: %s", exc.detail)
        report.drills_failed.update({f"{i.namespace}/{i.pvc}": exc.detail for i, _ in wanted})
        POLICY_DRILLS.labels("error").inc(len(wanted))
        return
    due = sorted(((next_drill_due(item, policy, newest), item, policy) for item, policy in wanted
                  if now >= next_drill_due(item, policy, newest)), key=lambda d: d[0])
    full = ""
    for _when, item, policy in due:
        key = f"{item.namespace}/{item.pvc}"
        if full:
            report.drills_skipped[key] = full
            POLICY_DRILLS.labels("skipped").inc()
            continue
        try:
            plan = drills.start(item.namespace, item.pvc, f"policy:{policy.id}")
        except SoteriaError as exc:
            if exc.code in DRILL_REFUSALS:
                report.drills_skipped[key] = exc.code
                POLICY_DRILLS.labels("skipped").inc()
                full = exc.code if exc.code == "drill_capacity" else ""
            else:
                report.drills_failed[key] = exc.detail
                POLICY_DRILLS.labels("error").inc()
                log.warning("policy %s: restore drill of %s not started: %s", policy.id, key, exc.detail)
            continue
        except Exception as exc:  # noqa: BLE001 - a drill's bug must not stop retention and the results
            log.exception("policy %s: restore drill of %s not started", policy.id, key)
            report.drills_failed[key] = f"internal error: {exc}"
            POLICY_DRILLS.labels("error").inc()
            continue
        report.drills_started[key] = plan.id
        POLICY_DRILLS.labels("started").inc()


def _apply_retention(policies: list[Policy], governed, report: Report) -> None:
    """Keep the newest `retain` successful backups this policy made; never the last successful one.

    A PVC whose inventory row counts no more successful backups than `retain` has none to
    delete (the policy's are a part of them), so its backups are not listed: the list is one
    upstream read per PVC, and in the steady state most PVCs are at or below their `retain`.
    A backup that completed after the inventory was read is then counted at the next run."""
    driver = drivers.current()
    for policy in policies:
        if not policy.enabled or not policy.retain:
            continue
        for item in governed.get(policy.id, []):
            key = f"{item.namespace}/{item.pvc}"
            if key in report.started or item.in_progress or item.health_reason in (
                    t.NOT_BOUND, t.UNSUPPORTED_DRIVER, t.VOLUME_MISSING) or item.backup_count <= policy.retain:
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
        drilled = sum(k in report.drills_started for k in keys)
        drill_failed = [k for k in keys if k in report.drills_failed]
        drill_note = (f"; {drilled} restore drill(s) started" if drilled else "") + (
            f"; {len(drill_failed)} restore drill(s) not started: " + "; ".join(
                f"{k}: {report.drills_failed[k]}" for k in drill_failed) if drill_failed else "")
        if failed:
            results[policy.id] = ("error", (f"{len(failed)} failed: " + "; ".join(
                f"{k}: {report.failed[k]}" for k in failed) + drill_note)[:500])
        elif started:
            results[policy.id] = ("started", (f"{len(started)} backup(s) started" + drill_note)[:500])
        else:
            results[policy.id] = ("up_to_date", (f"{len(keys)} PVC(s) checked, none due" + drill_note)[:500])

    def change(current: list[Policy]) -> list[Policy]:
        return [replace(p, last_run_at=now, last_result=results[p.id][0], last_detail=results[p.id][1])
                if p.id in results else p for p in current]

    if results:
        store.update(change)
