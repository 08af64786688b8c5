"""Policy use-cases: list, create or update, delete (each change audited on the Secret), and the
inventory refresh that publishes each PVC's policy interval beside its freshness."""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import datetime, timezone

from backups.models import CachedInventory
from backups.services import inventory, inventory_cache
from soteria_site.core import events
from soteria_site.core.errors import NotFound, SoteriaError

from . import evaluate, store
from .types import Policy, PolicyView, policy_id, validate

log = logging.getLogger(__name__)


def list_policies(visible: frozenset[str] | None = None) -> list[Policy]:
    """Every policy, or only those of the `visible` namespaces when given."""
    return [p for p in store.load() if visible is None or p.namespace in visible]


def save_policy(namespace: str, pvc: str, interval_hours: float, enabled: bool, retain: int | None,
                tags: list[str], actor: str, verify_every_hours: float | None = None) -> tuple[Policy, bool]:
    """Create or update (same namespace + pvc = same policy; every field is replaced, so an
    absent verify_every_hours turns restore drills off). Returns (policy, created)."""
    validate(namespace, pvc, interval_hours, enabled, retain, tags, verify_every_hours)
    verify = float(verify_every_hours) if verify_every_hours is not None else None
    now = datetime.now(timezone.utc)
    wanted_id = policy_id(namespace, pvc)
    outcome = {}

    def change(current: list[Policy]) -> list[Policy]:
        existing = next((p for p in current if p.id == wanted_id), None)
        outcome["created"] = existing is None
        if existing is None:
            policy = Policy(namespace=namespace, pvc=pvc, interval_hours=float(interval_hours), enabled=enabled,
                            retain=retain, tags=tuple(tags), created_at=now, updated_at=now, updated_by=actor,
                            verify_every_hours=verify)
        else:
            policy = replace(existing, interval_hours=float(interval_hours), enabled=enabled, retain=retain,
                             tags=tuple(tags), updated_at=now, updated_by=actor, verify_every_hours=verify)
        outcome["policy"] = policy
        return [p for p in current if p.id != wanted_id] + [policy]

    store.update(change)
    policy = outcome["policy"]
    _event("PolicyCreated" if outcome["created"] else "PolicyUpdated",
           f"{actor} {'created' if outcome['created'] else 'updated'} policy {policy.id}: every "
           f"{policy.interval_hours:g} h, {'enabled' if enabled else 'disabled'}"
           + (f", keep {retain}" if retain else "") + (f", restore drill every {verify:g} h" if verify else ""))
    return policy, outcome["created"]


def delete_policy(policy_id_: str, actor: str) -> Policy:
    removed = {}

    def change(current: list[Policy]) -> list[Policy]:
        match = next((p for p in current if p.id == policy_id_), None)
        if match is None:
            raise NotFound(f"no policy {policy_id_!r}")
        removed["policy"] = match
        return [p for p in current if p.id != policy_id_]

    store.update(change)
    _event("PolicyDeleted", f"{actor} deleted policy {policy_id_}")
    return removed["policy"]


def next_due_at(policy: Policy, policies: list[Policy], items) -> datetime | None:
    """The earliest time one of the PVCs this policy governs falls due (from inventory items)."""
    times = [evaluate.next_due(item, policy) for item in items
             if evaluate.effective(policies, item.namespace, item.pvc) is policy]
    return min(times) if times else None


def next_drill_due_at(policy: Policy, policies: list[Policy], items, newest_drills) -> datetime | None:
    """The earliest time one of this policy's PVCs with a successful backup falls due for a
    restore drill (None when the policy runs no drills or governs no such PVC)."""
    if not policy.verify_every_hours:
        return None
    times = [evaluate.next_drill_due(item, policy, newest_drills) for item in items
             if item.backup_count and evaluate.effective(policies, item.namespace, item.pvc) is policy]
    return min(times) if times else None


def with_due_times(policies: list[Policy], visible: frozenset[str] | None = None) -> list[PolicyView]:
    """The policies with their next due times, from an inventory of the `visible` namespaces
    (the ones the policies were chosen from; None: every namespace). A disabled policy has
    none; if the inventory cannot be built now, no policy has one, and if the drill records
    cannot be read, no policy has a drill due time."""
    items, newest = [], None
    if policies:
        try:
            items = inventory.build(visible=visible).items
        except SoteriaError as exc:
            log.warning("next_due_at unavailable: %s", exc.detail)
    if items and any(p.enabled and p.verify_every_hours for p in policies):
        try:
            newest = evaluate.newest_drill_starts()
        except SoteriaError as exc:
            log.warning("next_drill_due_at unavailable: %s", exc.detail)
    return [PolicyView(p, next_due_at(p, policies, items) if p.enabled else None,
                       next_drill_due_at(p, policies, items, newest) if p.enabled and newest is not None else None)
            for p in policies]


def refresh_inventory(now: datetime | None = None) -> CachedInventory | None:
    """Refresh the cached inventory, each row with its enabled policy's interval. Freshness is
    still worth publishing when the policy Secret cannot be read: the rows then say so."""
    try:
        policies = store.load()
    except SoteriaError as exc:
        log.warning("inventory refresh without policies: %s", exc.detail)
        return inventory_cache.refresh(now=now)

    def interval_of(namespace: str, pvc: str) -> float | None:
        policy = evaluate.effective(policies, namespace, pvc)
        return policy.interval_seconds if policy is not None and policy.enabled else None

    return inventory_cache.refresh(now=now, interval_of=interval_of)


def _event(reason: str, message: str) -> None:
    secret = store.secret()
    if secret is not None:
        events.emit("Secret", secret.namespace, secret.name, secret.uid, reason, message)
