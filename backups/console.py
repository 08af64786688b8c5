"""The console: server-rendered pages over the same services as the API."""

from __future__ import annotations

from datetime import datetime, timezone

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import DNS_SUBDOMAIN_MAX, RESERVED_LABEL_KEYS, fit_name
from soteria_site.core.timeparse import parse_time
from soteria_site.web import audit
from soteria_site.web.access import BACKUP, RESTORE, VIEW
from soteria_site.web.edge import BUSY_DETAIL, claim_slot, expensive
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import console_permission, may, visible_namespaces
from soteria_site.web.throttles import InventoryThrottle

from .forms import BackupForm, DrillForm, NamespaceRestoreForm, RestoreForm
from .services import backup as backup_service
from .services import drill_results, drills, inventory_cache, inventory_flight
from .services import restore as restore_service
from .types import Inventory, InventoryItem

HEALTH_STYLE = {"fresh": "ok", "stale": "bad", "never backed up": "bad", "last backup failed": "bad",
                "backup stuck": "bad", "backup in progress": "info", "not bound": "muted",
                "unsupported driver": "muted", "volume missing in Longhorn": "warn"}
DRILL_STYLE = {"passed": "ok", "failed": "bad", "error": "bad", "unverified": "warn", "running": "info"}


def _operator_labels(labels: dict) -> dict:
    """A backup's labels without those Longhorn adds to every backup (KubernetesStatus, a JSON
    blob, and longhorn.io/...): the tags someone gave, readable in a table cell."""
    return {k: v for k, v in (labels or {}).items()
            if k not in RESERVED_LABEL_KEYS and not k.startswith("longhorn.io/")}


def _span(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 5 h, 3 d."""
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def _drill_rows(found: list[dict]) -> list[dict]:
    """The PVC's drills as the page shows them: times parsed, the duration, the badge's style."""
    rows = []
    for drill in found:
        started, finished = parse_time(drill.get("started_at")), parse_time(drill.get("finished_at"))
        rows.append({**drill, "started": started, "style": DRILL_STYLE.get(drill.get("result"), "muted"),
                     "duration": _span((finished - started).total_seconds()) if started and finished else ""})
    return rows


def _denied(request, permission):
    return render(request, "denied.html", {"status": 403, "reason": "namespace_not_allowed",
                                           "permission": permission}, status=403)


def _error_page(request, template, context, exc: SoteriaError):
    return render(request, template, {**context, "error": exc}, status=exc.status)


@console_permission(VIEW, throttles=(InventoryThrottle,))
def inventory_page(request):
    """The stored inventory (the worker's last refresh) with its age, or a live build when
    none is stored yet or the caller asks for one (?refresh=1): shared with every concurrent
    build (backups/services/inventory_flight.py), and holding one long-request slot."""
    namespace = request.GET.get("namespace") or None
    context = {"nav": "inventory", "namespace": namespace}
    if namespace and not may(request, VIEW, namespace):
        return _denied(request, VIEW)
    visible = visible_namespaces(request)
    cached = None if request.GET.get("refresh") else inventory_cache.latest()
    if cached is not None:
        inv = _stored_inventory(cached, namespace, visible)
        context.update(stored=True, stored_age=_span((datetime.now(timezone.utc) - cached.generated_at).total_seconds()))
    else:
        if not claim_slot(request):
            return render(request, "backups/inventory.html", {**context, "error": {"detail": BUSY_DETAIL, "code": "busy"}},
                          status=503)
        try:
            inv = inventory_flight.build(namespace, visible=visible)
        except SoteriaError as exc:
            return _error_page(request, "backups/inventory.html", context, exc)
    groups = [(name, [(item, HEALTH_STYLE.get(item.health_reason, "muted"), _verified_age(item, inv.generated_at))
                      for item in items])
              for name, items in inv.by_namespace()]
    totals = {"pvcs": len(inv.items), "healthy": sum(i.healthy for i in inv.items),
              "unhealthy": sum(not i.healthy and i.driver != "none" and i.health_reason != "not bound"
                               for i in inv.items)}
    return render(request, "backups/inventory.html", {**context, "inventory": inv, "groups": groups,
                                                      "totals": totals})


def _stored_inventory(cached, namespace: str | None, visible: frozenset[str] | None) -> Inventory:
    """The stored rows as inventory items. The store keeps what the metrics need, so a stored
    row has no storage class, capacity or failure detail, and PVCs that are not bound or that
    no driver handles are not stored at all: the live view shows those."""
    items = []
    for row in cached.rows:
        if (namespace and row["namespace"] != namespace) or (visible is not None and row["namespace"] not in visible):
            continue
        items.append(InventoryItem(
            namespace=row["namespace"], pvc=row["pvc"], volume=row["volume"], storage_class="", capacity="",
            driver=row["driver"], last_backup_at=_from_timestamp(row.get("last_success")),
            last_backup_age_hours=row.get("age_hours"), backup_count=row.get("count") or 0,
            healthy=bool(row.get("healthy")), health_reason=row.get("reason", ""),
            last_verified_at=_from_timestamp(row.get("verified_at")), verify_result=row.get("verify_result", ""),
            verify_verdict=row.get("verdict", "")))
    return Inventory(generated_at=cached.generated_at, items=items)


def _from_timestamp(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None


def _verified_age(item, now: datetime) -> str:
    return _span((now - item.last_verified_at).total_seconds()) if item.last_verified_at else ""


@console_permission(VIEW)
def pvc_page(request, namespace, pvc):
    if not may(request, VIEW, namespace):
        return _denied(request, VIEW)
    context = {"nav": "inventory", "namespace": namespace, "pvc": pvc}
    try:
        found = backup_service.list_backups(namespace, pvc)
    except SoteriaError as exc:
        return _error_page(request, "backups/pvc.html", context, exc)
    try:
        drill_rows, drills_error = _drill_rows(drill_results.history(namespace, pvc)), None
    except SoteriaError as exc:  # the backups are still worth showing
        drill_rows, drills_error = [], exc
    suggested = fit_name(f"restore-{pvc}", DNS_SUBDOMAIN_MAX)  # a valid PVC name however long `pvc` is
    return render(request, "backups/pvc.html", {
        **context, "found": found, "backups": [(b, _operator_labels(b.labels)) for b in found.backups],
        "drills": drill_rows, "drills_error": drills_error, "drill_form": DrillForm(auto_id="drill_%s"),
        "backup_form": BackupForm(auto_id="backup_%s"),
        # Both forms have a dry_run field: distinct ids keep each label on its own checkbox.
        "restore_form": RestoreForm(backups=found.backups, auto_id="restore_%s",
                                    initial={"target_namespace": namespace, "target_pvc": suggested}),
        "may_backup": may(request, BACKUP, namespace), "may_restore": may(request, RESTORE, namespace)})


@require_POST
@console_permission(BACKUP)
def backup_action(request, namespace, pvc):
    form = BackupForm(request.POST)
    target = f"{namespace}/{pvc}"
    if not may(request, BACKUP, namespace):
        return _denied(request, BACKUP)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    if not form.cleaned_data["dry_run"] and not claim_slot(request):  # may wait for a detached volume
        messages.error(request, f"Backup not started: {BUSY_DETAIL}")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    try:
        result = backup_service.backup_pvc(namespace, pvc, form.tag_list(), requested_by(request),
                                           dry_run=form.cleaned_data["dry_run"])
    except SoteriaError as exc:
        audit.record(request, "backup.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace])
        messages.error(request, f"Backup refused: {exc.detail}")
    else:
        audit.record(request, "backup.create", 200, {"dry_run": result.dry_run}, target, [namespace])
        verb = "would start" if result.dry_run else "started"
        messages.success(request, f"Backup {result.backup} of volume {result.volume} {verb}.")
    return redirect("console:pvc", namespace=namespace, pvc=pvc)


@expensive
@require_POST
@console_permission(RESTORE)
def restore_action(request, namespace, pvc):
    form = RestoreForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {e}" for k, errs in form.errors.items() for e in errs))
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    data = form.cleaned_data
    target = f"{namespace}/{pvc} -> {data['target_namespace']}/{data['target_pvc']}"
    if not may(request, RESTORE, namespace, data["target_namespace"]):
        return _denied(request, RESTORE)
    try:
        result = restore_service.restore_pvc(namespace, pvc, data["target_pvc"], requested_by(request),
                                             target_namespace=data["target_namespace"], snapshot=data["snapshot"],
                                             dry_run=data["dry_run"])
    except SoteriaError as exc:
        audit.record(request, "restore.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace, data["target_namespace"]])
        messages.error(request, f"Restore refused: {exc.detail}")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    audit.record(request, "restore.create", 200, {"dry_run": result.dry_run}, target,
                 [namespace, data["target_namespace"]])
    p = result.plan
    if result.dry_run:
        grow = f", expanded from the backup's {p.backup_size} to {p.size}" if p.expand_to else ""
        messages.info(request, f"Dry run: would restore backup {p.backup.name} into "
                               f"{p.target_namespace}/{p.target_pvc} (new volume {p.volume}, {p.size}{grow}).")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    messages.success(request, f"Restoring backup {p.backup.name} into {p.target_namespace}/{p.target_pvc} "
                              f"(volume {p.volume}, {p.size}); progress below.")
    if p.size_note:
        messages.warning(request, f"Note: {p.size_note}.")
    return redirect(reverse("console:restores") + f"?namespace={p.target_namespace}")


@expensive
@require_POST
@console_permission(RESTORE)
def drill_action(request, namespace, pvc):
    """Start (or, as a dry run, plan) a restore drill of the PVC's latest backup."""
    if not may(request, RESTORE, namespace):
        return _denied(request, RESTORE)
    form = DrillForm(request.POST)
    dry_run = form.is_valid() and form.cleaned_data["dry_run"]
    target = f"{namespace}/{pvc}"
    try:
        p = drills.start(namespace, pvc, requested_by(request), dry_run=dry_run)
    except SoteriaError as exc:
        audit.record(request, "restore-drill.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace])
        messages.error(request, f"Restore drill refused: {exc.detail}")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    audit.record(request, "restore-drill.create", 200 if dry_run else 202, {"dry_run": dry_run}, target, [namespace])
    compares = (f"compare it with the manifest {p.manifest_key}" if p.has_manifest else
                "read it in full; the backup has no manifest, so the best result is unverified")
    if dry_run:
        messages.info(request, f"Dry run: would restore backup {p.backup.name} into the scratch claim "
                               f"{p.drill_namespace}/{p.scratch_pvc}, {compares}, then delete the scratch copy.")
    else:
        messages.success(request, f"Restore drill {p.id} of backup {p.backup.name} started: it will {compares}. "
                                  "Its result appears under Restore drills when it ends.")
    return redirect("console:pvc", namespace=namespace, pvc=pvc)


@expensive
@require_POST
@console_permission(BACKUP)
def backup_namespace_action(request, namespace):
    if not may(request, BACKUP, namespace):
        return _denied(request, BACKUP)
    try:
        result = backup_service.backup_namespace(namespace, [], requested_by(request))
    except SoteriaError as exc:
        audit.record(request, "backup.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, namespace,
                     [namespace])
        messages.error(request, f"Namespace backup refused: {exc.detail}")
    else:
        audit.record(request, "backup.namespace", 200, {}, namespace, [namespace])
        t = result.totals
        level = messages.success if not t["failed"] else messages.error
        level(request, f"Namespace {namespace}: {t['success']} backups started, {t['failed']} failed, "
                       f"{t['skipped']} skipped.")
        for outcome in result.results:
            if outcome.status == "failed":
                messages.error(request, f"{outcome.pvc}: {outcome.detail}")
    return redirect(reverse("console:inventory") + f"?namespace={namespace}")


@expensive
@console_permission(RESTORE)
def restore_namespace_page(request, namespace):
    form = NamespaceRestoreForm(request.POST or None, initial={"target_namespace": f"{namespace}-restore"})
    context = {"nav": "restores", "namespace": namespace, "form": form}
    if request.method != "POST" or not form.is_valid():
        return render(request, "backups/restore_namespace.html", context)
    data = form.cleaned_data
    if not may(request, RESTORE, namespace, data["target_namespace"]):
        return _denied(request, RESTORE)
    target = f"{namespace} -> {data['target_namespace']}"
    try:
        result = restore_service.restore_namespace(namespace, data["target_namespace"], data["target_prefix"],
                                                   requested_by(request), dry_run=not data["execute"])
    except SoteriaError as exc:
        audit.record(request, "restore.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace, data["target_namespace"]])
        return _error_page(request, "backups/restore_namespace.html", context, exc)
    audit.record(request, "restore.namespace", 200, {"dry_run": result.dry_run}, target,
                 [namespace, data["target_namespace"]])
    return render(request, "backups/restore_namespace.html", {**context, "result": result})


@expensive
@console_permission(VIEW)
def restores_page(request):
    namespace = request.GET.get("namespace") or None
    context = {"nav": "restores", "namespace": namespace}
    try:
        rows = restore_service.restore_status(namespace, visible=visible_namespaces(request))
    except SoteriaError as exc:
        return _error_page(request, "backups/restores.html", context, exc)
    return render(request, "backups/restores.html", {**context, "rows": rows})


@console_permission(VIEW)
def activity_page(request):
    return render(request, "backups/activity.html", {"nav": "activity",
                                                     "entries": audit.visible_entries(visible_namespaces(request))})
