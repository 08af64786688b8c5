"""One PVC's page, and what it starts: a backup, a restore into a new PVC (each planned, then
confirmed), a restore drill."""

from __future__ import annotations

from datetime import datetime, timezone

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import RESERVED_LABEL_KEYS
from soteria_site.core.timeparse import parse_time
from soteria_site.web import audit
from soteria_site.web.access import BACKUP, RESTORE, VIEW
from soteria_site.web.edge import BUSY_DETAIL, claim_slot, expensive
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import console_permission, may

from ..forms import BackupForm, DrillForm, RestoreForm
from ..services import backup as backup_service
from ..services import drill_results, drills, restore_targets
from ..services import restore as restore_service
from .common import CHANGED, denied, digest, error_page, span

DRILL_STYLE = {"passed": "ok", "failed": "bad", "error": "bad", "unverified": "warn", "running": "info"}


def _operator_labels(labels: dict) -> dict:
    """A backup's labels without those Longhorn adds to every backup (KubernetesStatus, a JSON
    blob, and longhorn.io/...): the tags someone gave, readable in a table cell."""
    return {k: v for k, v in (labels or {}).items()
            if k not in RESERVED_LABEL_KEYS and not k.startswith("longhorn.io/")}


def _drill_rows(found: list[dict]) -> list[dict]:
    """The PVC's drills as the page shows them: times parsed, the duration, the badge's style."""
    rows = []
    for drill in found:
        started, finished = parse_time(drill.get("started_at")), parse_time(drill.get("finished_at"))
        rows.append({**drill, "started": started, "style": DRILL_STYLE.get(drill.get("result"), "muted"),
                     "duration": span((finished - started).total_seconds()) if started and finished else ""})
    return rows


def _suggested(pvc: str, target_namespace: str) -> str:
    try:
        return restore_targets.suggest(pvc, target_namespace)
    except SoteriaError:  # the form still works: the operator types a name, the plan checks it
        return restore_targets.proposed(pvc, datetime.now(timezone.utc))


@console_permission(VIEW)
def pvc_page(request, namespace, pvc):
    if not may(request, VIEW, namespace):
        return denied(request, VIEW)
    context = {"nav": "inventory", "namespace": namespace, "pvc": pvc}
    try:
        found = backup_service.list_backups(namespace, pvc)
    except SoteriaError as exc:
        return error_page(request, "backups/pvc.html", context, exc)
    try:
        drill_rows, drills_error = _drill_rows(drill_results.history(namespace, pvc)), None
    except SoteriaError as exc:  # the backups are still worth showing
        drill_rows, drills_error = [], exc
    may_restore = may(request, RESTORE, namespace)
    return render(request, "backups/pvc.html", {
        **context, "found": found, "backups": [(b, _operator_labels(b.labels)) for b in found.backups],
        "drills": drill_rows, "drills_error": drills_error, "drill_form": DrillForm(auto_id="drill_%s"),
        "backup_form": BackupForm(auto_id="backup_%s"),
        "restore_form": RestoreForm(backups=found.backups, auto_id="restore_%s", initial={
            "target_namespace": namespace, "target_pvc": _suggested(pvc, namespace) if may_restore else ""}),
        "may_backup": may(request, BACKUP, namespace), "may_restore": may_restore})


def _backup_digest(result) -> str:
    # The snapshot's name carries the time of the request: what matters is the volume and the labels.
    return digest(result.driver, result.volume, result.labels)


@require_POST
@console_permission(BACKUP)
def backup_action(request, namespace, pvc):
    """First send: the plan (a dry run). Second, confirmed send: the backup, if the plan is unchanged."""
    form = BackupForm(request.POST, auto_id="backup_%s")
    target = f"{namespace}/{pvc}"
    if not may(request, BACKUP, namespace):
        return denied(request, BACKUP)
    if not form.is_valid():
        messages.error(request, "; ".join(e for errs in form.errors.values() for e in errs))
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    context = {"nav": "inventory", "namespace": namespace, "pvc": pvc, "form": form}
    try:
        planned = backup_service.backup_pvc(namespace, pvc, form.tag_list(), requested_by(request), dry_run=True)
    except SoteriaError as exc:
        audit.record(request, "backup.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace])
        messages.error(request, f"Backup refused: {exc.detail}")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    context.update(plan=planned, digest=_backup_digest(planned))
    if not form.confirming or form.cleaned_data["digest"] != context["digest"]:
        if form.confirming:
            messages.error(request, CHANGED)
        else:
            audit.record(request, "backup.create", 200, {"dry_run": True}, target, [namespace])
        return render(request, "backups/backup_plan.html", context, status=409 if form.confirming else 200)
    if not claim_slot(request):  # may wait for a detached volume
        messages.error(request, f"Backup not started: {BUSY_DETAIL}")
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    try:
        result = backup_service.backup_pvc(namespace, pvc, form.tag_list(), requested_by(request))
    except SoteriaError as exc:
        audit.record(request, "backup.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [namespace])
        messages.error(request, f"Backup refused: {exc.detail}")
    else:
        audit.record(request, "backup.create", 200, {"dry_run": False}, target, [namespace])
        messages.success(request, f"Backup {result.backup} of volume {result.volume} started.")
    return redirect("console:pvc", namespace=namespace, pvc=pvc)


def _restore_digest(p) -> str:
    # Not the new volume's or PV's name: those are made afresh for every plan.
    return digest(p.driver, p.namespace, p.pvc, p.backup.name, p.backup.url, p.target_namespace, p.target_pvc,
                  p.storage_class, p.access_modes, p.size, p.backup_size, p.source_size, p.expand_to, p.size_note)


@expensive
@require_POST
@console_permission(RESTORE)
def restore_action(request, namespace, pvc):
    """First send: the plan (a dry run), conflicts included. Second, confirmed send: the restore,
    if a new plan is the one shown; else the new plan, and nothing done."""
    form = RestoreForm(request.POST, auto_id="restore_%s")
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {e}" for k, errs in form.errors.items() for e in errs))
        return redirect("console:pvc", namespace=namespace, pvc=pvc)
    data = form.cleaned_data
    target = f"{namespace}/{pvc} -> {data['target_namespace']}/{data['target_pvc']}"
    touched = [namespace, data["target_namespace"]]
    if not may(request, RESTORE, namespace, data["target_namespace"]):
        return denied(request, RESTORE)
    context = {"nav": "inventory", "namespace": namespace, "pvc": pvc, "form": form}

    def refused(exc: SoteriaError):
        audit.record(request, "restore.create", exc.status, {"error": exc.code, "detail": exc.detail}, target, touched)
        messages.error(request, f"Restore refused: {exc.detail}")
        if exc.code == "target_exists":
            context["free_name"] = _suggested(pvc, data["target_namespace"])
        return render(request, "backups/restore_plan.html", context, status=exc.status)

    try:
        planned = restore_service.restore_pvc(namespace, pvc, data["target_pvc"], requested_by(request),
                                              target_namespace=data["target_namespace"], snapshot=data["snapshot"],
                                              dry_run=True)
    except SoteriaError as exc:
        return refused(exc)
    context.update(plan=planned.plan, digest=_restore_digest(planned.plan))
    if not form.confirming or data["digest"] != context["digest"]:
        if form.confirming:
            messages.error(request, CHANGED)
        else:
            audit.record(request, "restore.create", 200, {"dry_run": True}, target, touched)
        return render(request, "backups/restore_plan.html", context, status=409 if form.confirming else 200)
    try:
        result = restore_service.restore_pvc(namespace, pvc, data["target_pvc"], requested_by(request),
                                             target_namespace=data["target_namespace"], snapshot=data["snapshot"])
    except SoteriaError as exc:
        return refused(exc)
    audit.record(request, "restore.create", 200, {"dry_run": False}, target, touched)
    return render(request, "backups/restore_started.html", {**context, "plan": result.plan})


@expensive
@require_POST
@console_permission(RESTORE)
def drill_action(request, namespace, pvc):
    """Start (or, as a dry run, plan) a restore drill of the PVC's latest backup."""
    if not may(request, RESTORE, namespace):
        return denied(request, RESTORE)
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
