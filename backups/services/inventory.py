"""The inventory: every PVC grouped by namespace, with backup freshness and health.

Costs a constant number of upstream calls: three Kubernetes lists (PVCs, PVs,
storage classes) plus what the driver needs for all volumes at once (Longhorn:
three more Kubernetes lists, of its volumes, backups and backup volumes CRDs).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core.errors import SoteriaError

from .. import drivers
from .. import types as t
from ..drivers import failure_memory
from ..types import BackupFacts, Inventory, InventoryItem
from . import claims as claims_service
from . import drill_results

log = logging.getLogger(__name__)


def assess(facts: BackupFacts, now: datetime, max_age_hours: float, stuck_after_hours: float) -> tuple[bool, str]:
    """(healthy, health_reason) for a claim the driver handles. Healthy means the newest
    successful backup is younger than max_age_hours, whatever else is going on."""
    healthy = facts.last_success_at is not None and (now - facts.last_success_at) < timedelta(hours=max_age_hours)
    stuck_before = now - timedelta(hours=stuck_after_hours)
    if any(started is not None and started < stuck_before for _, started in facts.in_progress):
        return healthy, t.BACKUP_STUCK
    if facts.last_failure_is_newest:
        return healthy, t.LAST_BACKUP_FAILED
    if facts.in_progress:
        return healthy, t.BACKUP_IN_PROGRESS
    if facts.last_success_at is None:
        return False, t.NEVER_BACKED_UP
    return healthy, t.FRESH if healthy else t.STALE


def _age_hours(last: datetime | None, now: datetime) -> float | None:
    if last is None:
        return None
    return round(max((now - last).total_seconds(), 0.0) / 3600, 2)


def build(namespace: str | None = None, now: datetime | None = None,
          visible: frozenset[str] | None = None, remember_failures: bool = False) -> Inventory:
    """The inventory (of one namespace, or all; only `visible` namespaces when given).
    Failed backups Soteria remembers are read once; the refresh (`remember_failures`)
    also writes what it saw (backups/drivers/failure_memory.py)."""
    now = now or datetime.now(timezone.utc)
    driver = drivers.current()
    claims = claims_service.list_claims(namespace)
    if visible is not None:
        claims = [c for c in claims if c.pvc.namespace in visible]
    with failure_memory.reading() as ledger:
        views = driver.describe(claims, now)
    if remember_failures:
        failure_memory.save(ledger)
    max_age, stuck = settings.SOTERIA_BACKUP_MAX_AGE_HOURS, settings.SOTERIA_BACKUP_STUCK_HOURS
    items = []
    for claim in claims:
        base = dict(namespace=claim.pvc.namespace, pvc=claim.pvc.name, storage_class=claim.pvc.storage_class or "",
                    capacity=claim.capacity)
        view = views.get(claim.key)
        if not claim.bound or view is None:
            items.append(InventoryItem(**base, volume=claim.pvc.volume_name or "",
                                       driver=drivers.for_claim(claim).name if driver.supports(claim) else t.NO_DRIVER,
                                       last_backup_at=None, last_backup_age_hours=None, backup_count=0,
                                       healthy=False, health_reason=t.NOT_BOUND,
                                       detail=f"PVC phase {claim.pvc.phase}"))
            continue
        if not view.supported or view.missing:
            items.append(InventoryItem(**base, volume=view.volume,
                                       driver=(view.driver or driver.name) if view.supported else t.NO_DRIVER,
                                       last_backup_at=None, last_backup_age_hours=None, backup_count=0,
                                       healthy=False,
                                       health_reason=t.VOLUME_MISSING if view.missing else t.UNSUPPORTED_DRIVER,
                                       detail=view.detail))
            continue
        facts = view.facts
        healthy, reason = assess(facts, now, max_age, stuck)
        items.append(InventoryItem(
            **base, volume=view.volume, driver=view.driver or driver.name, last_backup_at=facts.last_success_at,
            last_backup_age_hours=_age_hours(facts.last_success_at, now), backup_count=facts.success_count,
            healthy=healthy, health_reason=reason, detail=facts.last_failure_error,
            in_progress=tuple(name for name, _ in facts.in_progress),
        ))
    return Inventory(generated_at=now, items=_with_verification(items))


def _with_verification(items: list[InventoryItem]) -> list[InventoryItem]:
    """Each PVC's restore drill outcome (one list of the verification records). Extra fields:
    when they cannot be read the inventory is still answered, without them."""
    try:
        verified = drill_results.verification_by_pvc()
    except SoteriaError as exc:
        log.warning("inventory without restore drill results: %s", exc.detail)
        return items
    return [replace(item, last_verified_at=v.last_verified_at, verify_result=v.verify_result,
                    verify_reason=v.reason, verify_verdict=v.verdict) if (v := verified.get((item.namespace, item.pvc))) else item
            for item in items]

