"""The cached inventory behind the freshness metrics.

The worker refreshes it every SOTERIA_METRICS_REFRESH_SECONDS (a constant
number of upstream calls); every web worker reads it from the shared database,
so a scrape never calls Kubernetes or Longhorn. A failed refresh keeps the
previous one and is counted.

Each row may carry the interval of the PVC's enabled policy: the caller passes
`interval_of` (policies.services.refresh_inventory does), since policies sit
above backups and this module never reads them itself.

Each row also carries the PVC's restore drills (the last passed one, the newest finished
one's result).

One PVC's change does not wait for the next refresh, and does not rewrite every row either:
`record_backup` (a backup Soteria started: the row shows it in progress), `record_restore` (a
restore Soteria started: the new PVC gets its row) and `record_verification` (a drill's
verdict) each add a `CachedRowChange`, applied over the rows by `latest()`. A refresh deletes
the changes recorded before its build began; later ones stay applied until the next refresh
has seen them. A backup's completion is left to the next refresh: that costs no upstream call
of its own (docs/performance-metrics.md).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import datetime

from django.db import DatabaseError, transaction

from soteria_site.core.errors import SoteriaError

from ..metrics import INVENTORY_REFRESH_FAILURES
from ..models import CachedInventory, CachedRowChange
from ..types import BACKUP_IN_PROGRESS, BACKUP_STUCK, LAST_BACKUP_FAILED, NEVER_BACKED_UP, NO_DRIVER, NOT_BOUND
from . import drill_records, drill_results, inventory

log = logging.getLogger(__name__)

# (namespace, pvc) -> the enabled policy's interval in seconds, or None when no policy covers it.
IntervalOf = Callable[[str, str], "float | None"]
# What a CachedRowChange says happened to its PVC.
BACKUP_STARTED, RESTORED, VERIFIED = "backup started", "restored", "verified"
REPLACED = "replaced"  # by a refresh: every row, no PVC of its own


def refresh(now: datetime | None = None, interval_of: IntervalOf | None = None) -> CachedInventory | None:
    """Build and store a new cached inventory; on failure keep the old one and count it.
    Without `interval_of` the rows say that policy coverage is unknown."""
    started = time.monotonic()
    # Changes recorded from here on may be newer than what the build reads: they stay.
    seen = CachedRowChange.objects.order_by("-id").values_list("id", flat=True).first() or 0
    try:
        inv = inventory.build(now=now, remember_failures=True)
    except SoteriaError as exc:
        INVENTORY_REFRESH_FAILURES.inc()
        log.error("inventory refresh failed, keeping the previous one: %s", exc.detail)
        return None
    rows = []
    for item in inv.items:
        if item.driver == NO_DRIVER or item.health_reason == NOT_BOUND:
            continue
        rows.append({
            "namespace": item.namespace, "pvc": item.pvc, "volume": item.volume, "driver": item.driver,
            "last_success": item.last_backup_at.timestamp() if item.last_backup_at else None,
            "age_hours": item.last_backup_age_hours, "healthy": item.healthy, "count": item.backup_count,
            "reason": item.health_reason, "in_progress": len(item.in_progress),
            "interval": interval_of(item.namespace, item.pvc) if interval_of is not None else None,
            "policies_known": interval_of is not None,
            **_drill_fields(item.last_verified_at, item.verify_result, item.verify_verdict),
        })
    return _store(inv.generated_at, rows, round(time.monotonic() - started, 3), CachedRowChange.objects.filter(id__lte=seen))


def store(generated_at: datetime, rows: list[dict], duration_seconds: float) -> CachedInventory:
    """Store rows another replica built (inventory_share): they replace this replica's, and the
    changes recorded here before that build began are deleted (the build has seen them; later
    ones stay applied until the next refresh)."""
    return _store(generated_at, rows, duration_seconds, CachedRowChange.objects.filter(recorded_at__lt=generated_at))


def _store(generated_at: datetime, rows: list[dict], duration_seconds: float, seen) -> CachedInventory:
    with transaction.atomic():
        cached, _ = CachedInventory.objects.update_or_create(
            id=1, defaults={"generated_at": generated_at, "rows": rows, "duration_seconds": duration_seconds})
        seen.delete()
        # A new revision every time: ids may come again after a rolled-back transaction.
        CachedRowChange.objects.create(namespace="", pvc="", kind=REPLACED, fields={"revision": uuid.uuid4().hex})
    return cached


def stored() -> CachedInventory | None:
    """The last refresh's rows as stored, without the changes recorded since (what is shared
    with other replicas: each applies its own changes)."""
    return CachedInventory.objects.filter(id=1).first()


def _drill_fields(last_verified_at: datetime | None, verify_result: str, verdict: str) -> dict:
    return {"verified_at": last_verified_at.timestamp() if last_verified_at else None,
            "verify_result": verify_result or "", "verdict": verdict or ""}


def record_verification(namespace: str, pvc: str) -> bool:
    """Copy one PVC's drill outcome (its record: one ConfigMap read) into its cached row, so the
    restore metrics show a drill as soon as it ends. False when the PVC has no cached row yet
    (the next refresh adds it) or its record cannot be read (the next refresh tries again)."""
    try:
        record = drill_records.load(namespace, pvc)
    except SoteriaError as exc:
        log.warning("cached inventory keeps the old drill result of %s/%s: %s", namespace, pvc, exc.detail)
        return False
    verification = drill_results.verification_of(record)
    fields = (_drill_fields(verification.last_verified_at, verification.verify_result, verification.verdict)
              if verification else _drill_fields(None, "", ""))
    cached = latest()
    if cached is None or not any((r["namespace"], r["pvc"]) == (namespace, pvc) for r in cached.rows):
        return False
    _record(namespace, pvc, VERIFIED, fields)
    return True


def _record(namespace: str, pvc: str, kind: str, fields: dict) -> None:
    """Record one PVC's change. The operation has started already: a database that cannot take
    the change now leaves it to the next refresh, and never fails the operation."""
    try:
        with transaction.atomic():  # a savepoint inside the caller's transaction, if any
            CachedRowChange.objects.create(namespace=namespace, pvc=pvc, kind=kind, fields=fields)
    except DatabaseError as exc:
        log.warning("cached inventory waits for the next refresh to show %s of %s/%s: %s", kind, namespace, pvc, exc)


def record_backup(namespace: str, pvc: str, backup: str) -> None:
    """A backup Soteria has just started: the PVC's row shows it in progress (no upstream call;
    a PVC without a row gets one at the next refresh, which also sees the backup complete)."""
    _record(namespace, pvc, BACKUP_STARTED, {"backup": backup})


def record_restore(namespace: str, pvc: str, volume: str, driver: str) -> None:
    """A restore Soteria has just started into a new PVC: its row, as a volume nothing has backed
    up yet. A target whose volume is not known yet (a restic Job's claim binds later) gets its
    row at the next refresh, as does the policy interval of every new row."""
    if not volume:
        return
    _record(namespace, pvc, RESTORED, {
        "namespace": namespace, "pvc": pvc, "volume": volume, "driver": driver, "last_success": None,
        "age_hours": None, "healthy": False, "count": 0, "reason": NEVER_BACKED_UP, "in_progress": 0,
        "interval": None, "policies_known": False, **_drill_fields(None, "", "")})


def _apply(rows: list[dict], changes) -> list[dict]:
    """The rows with the changes applied, oldest change first; rows changed are copies."""
    index = {(r["namespace"], r["pvc"]): i for i, r in enumerate(rows)}
    rows = list(rows)
    for change in changes:
        key = (change.namespace, change.pvc)
        if change.kind == RESTORED:
            if key in index:
                rows[index[key]] = dict(change.fields)
            else:
                index[key] = len(rows)
                rows.append(dict(change.fields))
            continue
        if key not in index:
            continue
        row = rows[index[key]] = dict(rows[index[key]])
        if change.kind == VERIFIED:
            row.update(change.fields)
        elif change.kind == BACKUP_STARTED:
            # Soteria refuses to start a backup while another one runs, so this is the one
            # running; a stuck or newer failed backup still says more (inventory.assess).
            row["in_progress"] = max(row["in_progress"], 1)
            if row["reason"] not in (BACKUP_STUCK, LAST_BACKUP_FAILED):
                row["reason"] = BACKUP_IN_PROGRESS
    return rows


def version() -> tuple | None:
    """What identifies the cached rows as `latest()` reads them, without reading them (a column
    after the rows would be read through them): the last refresh's revision and the newest
    change. None before anything was cached."""
    newest = CachedRowChange.objects.order_by("-id").values_list("id", flat=True).first()
    if newest is None:
        return None
    replaced = (CachedRowChange.objects.filter(kind=REPLACED).order_by("-id")
                .values_list("fields", flat=True).first())
    return (replaced or {}).get("revision"), newest


def latest() -> CachedInventory | None:
    """The last refresh, its rows with every change recorded since applied."""
    cached = CachedInventory.objects.filter(id=1).first()
    if cached is not None:
        changes = list(CachedRowChange.objects.exclude(kind=REPLACED).order_by("id"))
        if changes:
            cached.rows = _apply(cached.rows, changes)
    return cached
