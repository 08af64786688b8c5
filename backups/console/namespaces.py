"""A whole namespace backed up, or restored into another: the plan of every PVC first, then,
confirmed, the batch."""

from __future__ import annotations

from django.contrib import messages
from django.shortcuts import redirect, render
from django.urls import reverse

from soteria_site.core.errors import SoteriaError
from soteria_site.web import audit
from soteria_site.web.access import BACKUP, RESTORE
from soteria_site.web.edge import expensive
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import console_permission, may

from ..forms import NamespaceBackupForm, NamespaceRestoreForm
from ..services import backup as backup_service
from ..services import restore as restore_service
from .common import CHANGED, denied, digest, error_page


def _backup_digest(result) -> str:
    return digest([(o.pvc, o.status, o.error, o.volume) for o in result.results])


@expensive
@console_permission(BACKUP)
def backup_namespace_page(request, namespace):
    """GET or a first POST: the plan of every PVC. A confirmed POST whose plan is unchanged: the backups."""
    if not may(request, BACKUP, namespace):
        return denied(request, BACKUP)
    form = NamespaceBackupForm(request.POST if request.method == "POST" else {})
    context = {"nav": "inventory", "namespace": namespace, "form": form}
    if not form.is_valid():
        return render(request, "backups/backup_namespace.html", context, status=400)
    tags, who = form.tag_list(), requested_by(request)
    try:
        planned = backup_service.backup_namespace(namespace, tags, who, dry_run=True)
    except SoteriaError as exc:
        audit.record(request, "backup.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, namespace,
                     [namespace])
        return error_page(request, "backups/backup_namespace.html", context, exc)
    context.update(plan=planned, digest=_backup_digest(planned))
    confirming = request.method == "POST" and form.confirming
    if not confirming or form.cleaned_data["digest"] != context["digest"]:
        if confirming:
            messages.error(request, CHANGED)
        return render(request, "backups/backup_namespace.html", context, status=409 if confirming else 200)
    try:
        result = backup_service.backup_namespace(namespace, tags, who)
    except SoteriaError as exc:
        audit.record(request, "backup.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, namespace,
                     [namespace])
        messages.error(request, f"Namespace backup refused: {exc.detail}")
        return redirect(reverse("console:inventory") + f"?namespace={namespace}")
    audit.record(request, "backup.namespace", 200, {}, namespace, [namespace])
    t = result.totals
    level = messages.success if not t["failed"] else messages.error
    level(request, f"Namespace {namespace}: {t['success']} backups started, {t['failed']} failed, "
                   f"{t['skipped']} skipped.")
    for outcome in result.results:
        if outcome.status == "failed":
            messages.error(request, f"{outcome.pvc}: {outcome.detail}")
    return redirect(reverse("console:inventory") + f"?namespace={namespace}")


def _restore_digest(result) -> str:
    return digest(result.target_namespace, result.target_prefix,
                  [(o.pvc, o.target_pvc, o.status, o.error, o.plan.backup.name if o.plan else "",
                    o.plan.size if o.plan else "") for o in result.results])


@expensive
@console_permission(RESTORE)
def restore_namespace_page(request, namespace):
    """The form; sent, the plan of every PVC (conflicts included); confirmed with the plan
    unchanged, the restores handed to the worker."""
    form = NamespaceRestoreForm(request.POST or None, initial={"target_namespace": f"{namespace}-restore",
                                                              "target_prefix": "restore-"})
    context = {"nav": "restores", "namespace": namespace, "form": form, "plan": None, "result": None}
    if request.method != "POST" or not form.is_valid():
        return render(request, "backups/restore_namespace.html", context, status=400 if form.errors else 200)
    data = form.cleaned_data
    if not may(request, RESTORE, namespace, data["target_namespace"]):
        return denied(request, RESTORE)
    target = f"{namespace} -> {data['target_namespace']}"
    touched = [namespace, data["target_namespace"]]

    def run(dry_run: bool):
        return restore_service.restore_namespace(namespace, data["target_namespace"], data["target_prefix"],
                                                 requested_by(request), dry_run=dry_run)

    try:
        planned = run(dry_run=True)
    except SoteriaError as exc:
        audit.record(request, "restore.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     touched)
        return error_page(request, "backups/restore_namespace.html", context, exc)
    context.update(plan=planned, digest=_restore_digest(planned))
    if not form.confirming or data["digest"] != context["digest"]:
        if form.confirming:
            messages.error(request, CHANGED)
        else:
            audit.record(request, "restore.namespace", 200, {"dry_run": True}, target, touched)
        return render(request, "backups/restore_namespace.html", context, status=409 if form.confirming else 200)
    try:
        result = run(dry_run=False)
    except SoteriaError as exc:
        audit.record(request, "restore.namespace", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     touched)
        return error_page(request, "backups/restore_namespace.html", context, exc)
    audit.record(request, "restore.namespace", 200, {"dry_run": False}, target, touched)
    return render(request, "backups/restore_namespace.html", {**context, "plan": None, "result": result})
