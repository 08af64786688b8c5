"""The inventory snapshot behind the freshness metrics.

The worker refreshes it every SOTERIA_METRICS_REFRESH_SECONDS (a constant
number of upstream calls, plus one read of the policy Secret); every web worker
reads it from the shared database, so a scrape never calls Kubernetes or
Longhorn. A failed refresh keeps the previous snapshot and is counted.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime

from ..errors import SoteriaError
from ..metrics import INVENTORY_REFRESH_FAILURES
from ..models import InventorySnapshot
from ..types import NO_DRIVER, NOT_BOUND
from . import inventory

log = logging.getLogger(__name__)


def _interval_seconds(policies, namespace: str, pvc: str) -> float | None:
    from policies.evaluate import effective

    policy = effective(policies, namespace, pvc)
    return policy.interval_seconds if policy is not None and policy.enabled else None


def refresh(now: datetime | None = None) -> InventorySnapshot | None:
    """Build and store a new snapshot; on failure keep the old one and count it."""
    from policies import store

    started = time.monotonic()
    try:
        inv = inventory.build(now=now, remember_failures=True)
        try:
            policies = store.load()
        except SoteriaError as exc:  # freshness is still worth publishing without policy data
            log.warning("inventory snapshot without policies: %s", exc.detail)
            policies = None
    except SoteriaError as exc:
        INVENTORY_REFRESH_FAILURES.inc()
        log.error("inventory refresh failed, keeping the previous snapshot: %s", exc.detail)
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
            "interval": _interval_seconds(policies, item.namespace, item.pvc) if policies is not None else None,
            "policies_known": policies is not None,
        })
    snapshot, _ = InventorySnapshot.objects.update_or_create(
        id=1, defaults={"generated_at": inv.generated_at, "rows": rows,
                        "duration_seconds": round(time.monotonic() - started, 3)})
    return snapshot


def latest() -> InventorySnapshot | None:
    return InventorySnapshot.objects.filter(id=1).first()
