"""Policy use-cases: list, create or update, delete (each change audited on the Secret), due
times from the stored inventory, and the inventory refresh that publishes each PVC's policy
interval beside its freshness."""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from backups.models import CachedInventory
from backups.services import inventory_cache, inventory_share
from soteria_site.core import events
from soteria_site.core.errors import NotFound, SoteriaError
from soteria_site.core.names import require_dns_label, require_dns_subdomain

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
    # An id that no policy can have is refused before the policy Secret is read.
    namespace, dot, pvc = policy_id_.partition(".")
    require_dns_label(namespace, "id")
    if dot:
        require_dns_subdomain(pvc, "id")
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


def recover_store(discard: bool, actor: str) -> tuple[list[Policy], str]:
    """Write the policies back after someone else deleted or spoiled the Secret's key (see
    store.recover); returns them and the key the unreadable content was kept under."""
    policies, kept = store.recover(discard)
    _event("PolicyStoreRecovered",
           f"{actor} {'started the policies over, empty' if discard else f'wrote back {len(policies)} policies'}"
           + (f"; the unreadable content is kept as key {kept}" if kept else ""))
    return policies, kept


@dataclass(frozen=True)
class StoredPvc:
    """What due times need of one PVC, from a row of the stored inventory."""

    namespace: str
    pvc: str
    last_backup_at: datetime | None
    backup_count: int


@dataclass(frozen=True)
class DueTimes:
    """The policies with their due times, and when the stored inventory they come from was
    built (None: no inventory is stored yet, so no policy has a due time)."""

    views: list[PolicyView]
    as_of: datetime | None


def stored_pvcs(visible: frozenset[str] | None = None) -> tuple[list[StoredPvc], datetime | None]:
    """The PVCs of the stored inventory (the worker's last refresh; only bound PVCs a driver
    handles are stored), of the `visible` namespaces when given, and when it was built."""
    cached = inventory_cache.latest()
    if cached is None:
        return [], None
    pvcs = [StoredPvc(row["namespace"], row["pvc"],
                      datetime.fromtimestamp(row["last_success"], timezone.utc) if row.get("last_success") else None,
                      row.get("count") or 0)
            for row in cached.rows if visible is None or row["namespace"] in visible]
    return pvcs, cached.generated_at


def _governed(policies: list[Policy], pvcs: list[StoredPvc]) -> dict[str, list[StoredPvc]]:
    """Policy id -> the PVCs it governs (evaluate.effective, asked of each namespace's policies
    only: one pass over the PVCs, whatever the number of policies)."""
    by_namespace: dict[str, list[Policy]] = {}
    for policy in policies:
        by_namespace.setdefault(policy.namespace, []).append(policy)
    governed: dict[str, list[StoredPvc]] = {}
    indexed = {namespace: evaluate.policy_index(group) for namespace, group in by_namespace.items()}
    for pvc in pvcs:
        candidates = indexed.get(pvc.namespace)
        policy = evaluate.effective(candidates, pvc.namespace, pvc.pvc) if candidates else None
        if policy is not None:
            governed.setdefault(policy.id, []).append(pvc)
    return governed


def with_due_times(policies: list[Policy], visible: frozenset[str] | None = None) -> DueTimes:
    """The policies with their next due times, from the stored inventory of the `visible`
    namespaces (the ones the policies were chosen from; None: every namespace): no inventory is
    built here. A disabled policy has none; before the first stored inventory no policy has
    one; if the drill records cannot be read, no policy has a drill due time."""
    pvcs, as_of = stored_pvcs(visible) if policies else ([], None)
    governed = _governed(policies, pvcs)
    newest = None
    if pvcs and any(p.enabled and p.verify_every_hours for p in policies):
        try:
            newest = evaluate.newest_drill_starts()
        except SoteriaError as exc:
            log.warning("next_drill_due_at unavailable: %s", exc.detail)
    views = []
    for policy in policies:
        mine = governed.get(policy.id, []) if policy.enabled else []
        due = min((evaluate.next_due(pvc, policy) for pvc in mine), default=None)
        drill_due = None
        if newest is not None and policy.verify_every_hours:
            drill_due = min((evaluate.next_drill_due(pvc, policy, newest) for pvc in mine if pvc.backup_count),
                            default=None)
        views.append(PolicyView(policy, due, drill_due))
    return DueTimes(views, as_of)


def refresh_inventory(now: datetime | None = None, holder: str | None = None) -> CachedInventory | None:
    """Refresh the cached inventory: built here, each row with its enabled policy's interval, by
    the replica holding the refresh Lease, copied from its publication by the others
    (inventory_share)."""
    return share_inventory(now, holder).cached


def share_inventory(now: datetime | None = None, holder: str | None = None) -> inventory_share.Refresh:
    """The refresh tick, saying whether this replica built, copied or kept its rows."""
    return inventory_share.refresh(lambda: build_inventory(now), now=now, holder=holder)


def build_inventory(now: datetime | None = None) -> CachedInventory | None:
    """Build and store the cached inventory, each row with its enabled policy's interval.
    Freshness is still worth publishing when the policy Secret cannot be read: the rows then say so."""
    try:
        policies = store.load()
    except SoteriaError as exc:
        log.warning("inventory refresh without policies: %s", exc.detail)
        return inventory_cache.refresh(now=now)

    by_id = evaluate.policy_index(policies)  # once, not once a PVC

    def interval_of(namespace: str, pvc: str) -> float | None:
        policy = evaluate.effective(by_id, namespace, pvc)
        return policy.interval_seconds if policy is not None and policy.enabled else None

    return inventory_cache.refresh(now=now, interval_of=interval_of)


def _event(reason: str, message: str) -> None:
    secret = store.secret()
    if secret is not None:
        events.emit("Secret", secret.namespace, secret.name, secret.uid, reason, message)
