"""The inventory page: every PVC by namespace, filtered by GET parameters and paginated, so a
filter survives a reload and a page stays small at 10,000 PVCs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from django.conf import settings
from django.shortcuts import render

from soteria_site.core.errors import SoteriaError
from soteria_site.web.access import VIEW
from soteria_site.web.edge import BUSY_DETAIL, claim_slot
from soteria_site.web.permissions import console_permission, may, visible_namespaces
from soteria_site.web.throttles import InventoryThrottle

from ..forms import InventoryFilterForm
from ..services import inventory_cache, inventory_flight
from ..types import InventoryItem
from .common import HEALTH_STYLE, denied, error_page, span

PAGE_SIZE = 200  # PVC rows per page: about 200 KB of HTML
NAMESPACE_ROWS = 200  # namespaces in the counts table; more are reached through the filter


@dataclass(frozen=True)
class Row:
    item: InventoryItem
    style: str
    verified_age: str
    next_due: datetime | None  # the policy's next run (None: no policy known, or never backed up)
    overdue: bool

    @property
    def attention(self) -> bool:
        i = self.item
        return not i.healthy and i.driver != "none" and i.health_reason != "not bound"


@dataclass(frozen=True)
class NamespaceCounts:
    name: str
    pvcs: int = 0
    healthy: int = 0
    attention: int = 0
    overdue: int = 0
    matching: int = 0


@console_permission(VIEW, throttles=(InventoryThrottle,))
def inventory_page(request):
    """The stored inventory (the worker's last refresh) with its age, or a live build when
    none is stored yet or the caller asks for one (?refresh=1): shared with every concurrent
    build (backups/services/inventory_flight.py), and holding one long-request slot."""
    form = InventoryFilterForm(request.GET)
    filters = form.cleaned_data if form.is_valid() else {}
    namespace = filters.get("namespace") or None
    context = {"nav": "inventory", "namespace": namespace, "form": form}
    if namespace and not may(request, VIEW, namespace):
        return denied(request, VIEW)
    visible = visible_namespaces(request)
    cached = None if request.GET.get("refresh") else inventory_cache.latest()
    if cached is not None:
        rows = _stored_rows(cached, namespace, visible)
        generated_at = cached.generated_at
        context.update(stored=True, stored_age=span((datetime.now(timezone.utc) - generated_at).total_seconds()))
    else:
        if not claim_slot(request):
            return render(request, "backups/inventory.html", {**context, "error": {"detail": BUSY_DETAIL, "code": "busy"}},
                          status=503)
        try:
            inv = inventory_flight.build(namespace, visible=visible)
        except SoteriaError as exc:
            return error_page(request, "backups/inventory.html", context, exc)
        rows = [_row(item, inv.generated_at) for item in inv.items]
        generated_at = inv.generated_at
    rows.sort(key=lambda r: (r.item.namespace, r.item.pvc))
    matching = [r for r in rows if _matches(r, filters)]
    page, pages = _page_of(filters.get("page") or 1, len(matching))
    shown = matching[(page - 1) * PAGE_SIZE:page * PAGE_SIZE]
    counts = _counts(rows, matching)
    context.update(
        generated_at=generated_at, groups=_grouped(shown, counts), namespaces=counts[:NAMESPACE_ROWS],
        namespaces_hidden=max(len(counts) - NAMESPACE_ROWS, 0), matching=len(matching), page=page, pages=pages,
        filtered=any(filters.get(k) for k in ("reason", "q", "overdue")),
        totals={"pvcs": len(rows), "healthy": sum(r.item.healthy for r in rows),
                "unhealthy": sum(r.attention for r in rows), "overdue": sum(r.overdue for r in rows)},
        refresh_query=_query(filters, refresh=1), prev_query=_query(filters, page=page - 1) if page > 1 else "",
        next_query=_query(filters, page=page + 1) if page < pages else "")
    return render(request, "backups/inventory.html", context)


def _matches(row: Row, filters: dict) -> bool:
    if filters.get("reason") and row.item.health_reason != filters["reason"]:
        return False
    if filters.get("q") and filters["q"].lower() not in row.item.pvc:
        return False
    return not filters.get("overdue") or row.overdue


def _page_of(asked: int, count: int) -> tuple[int, int]:
    pages = max((count + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return min(asked, pages), pages


def _query(filters: dict, **changes) -> str:
    """The page's GET parameters with `changes`: links keep the filter."""
    params = {k: v for k, v in filters.items() if v and k != "page"}
    params.update({k: v for k, v in changes.items() if v})
    if params.get("overdue"):
        params["overdue"] = "on"
    return urlencode(params)


def _counts(rows: list[Row], matching: list[Row]) -> list[NamespaceCounts]:
    counts: dict[str, dict] = {}
    for r in rows:
        c = counts.setdefault(r.item.namespace, {"pvcs": 0, "healthy": 0, "attention": 0, "overdue": 0, "matching": 0})
        c["pvcs"] += 1
        c["healthy"] += r.item.healthy
        c["attention"] += r.attention
        c["overdue"] += r.overdue
    for r in matching:
        counts[r.item.namespace]["matching"] += 1
    return [NamespaceCounts(name, **c) for name, c in sorted(counts.items())]


def _grouped(shown: list[Row], counts: list[NamespaceCounts]) -> list[tuple[NamespaceCounts, list[Row]]]:
    by_name = {c.name: c for c in counts}
    groups: dict[str, list[Row]] = {}
    for r in shown:
        groups.setdefault(r.item.namespace, []).append(r)
    return [(by_name[name], items) for name, items in groups.items()]


def _row(item: InventoryItem, now: datetime, interval: float | None = None) -> Row:
    verified = span((now - item.last_verified_at).total_seconds()) if item.last_verified_at else ""
    next_due, overdue = None, False
    if interval:
        # The evaluator runs every SOTERIA_POLICY_EVAL_SECONDS: a run is late only past that.
        late = datetime.now(timezone.utc) - timedelta(seconds=settings.SOTERIA_POLICY_EVAL_SECONDS)
        if item.last_backup_at is None:
            overdue = item.health_reason != "backup in progress"
        else:
            next_due = item.last_backup_at + timedelta(seconds=interval)
            overdue = next_due < late and item.health_reason != "backup in progress"
    return Row(item, HEALTH_STYLE.get(item.health_reason, "muted"), verified, next_due, overdue)


def _stored_rows(cached, namespace: str | None, visible: frozenset[str] | None) -> list[Row]:
    """The stored rows as inventory rows. The store keeps what the metrics need, so a stored
    row has no storage class, capacity or failure detail, and PVCs that are not bound or that
    no driver handles are not stored at all: the live view shows those."""
    rows = []
    for row in cached.rows:
        if (namespace and row["namespace"] != namespace) or (visible is not None and row["namespace"] not in visible):
            continue
        item = InventoryItem(
            namespace=row["namespace"], pvc=row["pvc"], volume=row["volume"], storage_class="", capacity="",
            driver=row["driver"], last_backup_at=_from_timestamp(row.get("last_success")),
            last_backup_age_hours=row.get("age_hours"), backup_count=row.get("count") or 0,
            healthy=bool(row.get("healthy")), health_reason=row.get("reason", ""),
            last_verified_at=_from_timestamp(row.get("verified_at")), verify_result=row.get("verify_result", ""),
            verify_verdict=row.get("verdict", ""))
        rows.append(_row(item, cached.generated_at, row.get("interval")))
    return rows


def _from_timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None

