"""The cached inventory behind the freshness metrics.

The worker refreshes it every SOTERIA_METRICS_REFRESH_SECONDS (a constant
number of upstream calls); every web worker reads it from the shared database,
so a scrape never calls Kubernetes or Longhorn. A failed refresh keeps the
previous one and is counted.

Each row may carry the interval of the PVC's enabled policy: the caller passes
`interval_of` (policies.services.refresh_inventory does), since policies sit
above backups and this module never reads them itself.

Each row also carries the PVC's restore drills (the last passed one, the newest finished
one's result): `record_verification` rewrites one PVC's drill fields as soon as its drill
ends, so the restore metrics do not wait for the next refresh.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from soteria_site.core.errors import SoteriaError

from ..metrics import INVENTORY_REFRESH_FAILURES
from ..models import CachedInventory
from ..types import NO_DRIVER, NOT_BOUND
from . import drill_records, drills, inventory

log = logging.getLogger(__name__)

# (namespace, pvc) -> the enabled policy's interval in seconds, or None when no policy covers it.
IntervalOf = Callable[[str, str], "float | None"]


def refresh(now: datetime | None = None, interval_of: IntervalOf | None = None) -> CachedInventory | None:
    """Build and store a new cached inventory; on failure keep the old one and count it.
    Without `interval_of` the rows say that policy coverage is unknown."""
    started = time.monotonic()
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
    cached, _ = CachedInventory.objects.update_or_create(
        id=1, defaults={"generated_at": inv.generated_at, "rows": rows,
                        "duration_seconds": round(time.monotonic() - started, 3)})
    return cached


def _drill_fields(last_verified_at: datetime | None, verify_result: str, verdict: str) -> dict:
    return {"verified_at": last_verified_at.timestamp() if last_verified_at else None,
            "verify_result": verify_result or "", "verdict": verdict or ""}


def record_verification(namespace: str, pvc: str) -> bool:
    """Copy one PVC's drill outcome (its record: one ConfigMap read) into the cached row, so the
    restore metrics show a drill as soon as it ends. False when the PVC has no cached row yet
    (the next refresh adds it) or its record cannot be read (the next refresh tries again)."""
    try:
        record = drill_records.load(namespace, pvc)
    except SoteriaError as exc:
        log.warning("cached inventory keeps the old drill result of %s/%s: %s", namespace, pvc, exc.detail)
        return False
    verification = drills.verification_of(record)
    fields = (_drill_fields(verification.last_verified_at, verification.verify_result, verification.verdict)
              if verification else _drill_fields(None, "", ""))
    with transaction.atomic():
        cached = CachedInventory.objects.select_for_update().filter(id=1).first()
        row = next((r for r in cached.rows if (r["namespace"], r["pvc"]) == (namespace, pvc)), None) if cached else None
        if row is None:
            return False
        row.update(fields)
        cached.save(update_fields=["rows"])
    return True


def latest() -> CachedInventory | None:
    return CachedInventory.objects.filter(id=1).first()
