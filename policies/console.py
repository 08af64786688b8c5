"""Console pages for policies."""

from datetime import datetime, timedelta, timezone

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from backups.console.common import CHANGED, digest
from backups.forms import DeleteConfirmForm
from soteria_site.core.errors import SoteriaError
from soteria_site.web import audit
from soteria_site.web.access import POLICIES, VIEW
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import console_permission, visible_namespaces

from . import services
from .forms import PolicyForm
from .types import policy_namespace


@console_permission(VIEW)
def policies_page(request):
    context = {"nav": "policies", "form": PolicyForm()}
    try:
        visible = visible_namespaces(request)
        due = services.with_due_times(services.list_policies(visible), visible)
    except SoteriaError as exc:
        return render(request, "policies/policies.html", {**context, "error": exc}, status=exc.status)
    context.update(policies=due.views, due_as_of=due.as_of,
                   due_age=_span(datetime.now(timezone.utc) - due.as_of) if due.as_of else "")
    return render(request, "policies/policies.html", context)


def _span(delta: timedelta) -> str:
    seconds = max(delta.total_seconds(), 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


@require_POST
@console_permission(POLICIES)
def save_action(request):
    form = PolicyForm(request.POST)
    if not form.is_valid():
        messages.error(request, "; ".join(f"{k}: {e}" for k, errs in form.errors.items() for e in errs))
        return redirect("console:policies")
    d = form.cleaned_data
    target = f"{d['namespace']}/{d['pvc']}" if d["pvc"] else d["namespace"]
    try:
        policy, created = services.save_policy(d["namespace"], d["pvc"], d["interval_hours"], d["enabled"],
                                               d["retain"], form.tag_list(), requested_by(request),
                                               verify_every_hours=d["verify_every_hours"])
    except SoteriaError as exc:
        audit.record(request, "policy.create", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [d["namespace"]])
        messages.error(request, f"Policy not saved: {exc.detail}")
    else:
        audit.record(request, "policy.create", 201 if created else 200, {}, target, [d["namespace"]])
        messages.success(request, f"Policy {policy.id} {'created' if created else 'updated'}.")
    return redirect("console:policies")


def _digest(p) -> str:
    return digest(p.namespace, p.pvc, p.interval_hours, p.enabled, p.retain, p.tags, p.verify_every_hours,
                  p.updated_at)


@require_POST
@console_permission(POLICIES)
def delete_action(request, policy_id):
    """First send: what deleting the policy means. Second, confirmed send for the same version of
    the policy: the deletion."""
    form = DeleteConfirmForm(request.POST)
    form.is_valid()  # two optional hidden fields: always valid
    visible = visible_namespaces(request)
    try:
        found = [p for p in services.list_policies(visible) if p.id == policy_id]
        view = services.with_due_times(found, visible).views[0] if found else None
    except SoteriaError as exc:
        messages.error(request, f"Policy not deleted: {exc.detail}")
        return redirect("console:policies")
    if view is None:
        messages.error(request, f"Policy not deleted: no policy {policy_id}.")
        return redirect("console:policies")
    context = {"nav": "policies", "view": view, "policy": view.policy, "digest": _digest(view.policy)}
    if not form.confirming or form.cleaned_data["digest"] != context["digest"]:
        if form.confirming:
            messages.error(request, CHANGED)
        return render(request, "policies/delete_plan.html", context, status=409 if form.confirming else 200)
    try:
        services.delete_policy(policy_id, requested_by(request))
    except SoteriaError as exc:
        audit.record(request, "policy.destroy", exc.status, {"error": exc.code, "detail": exc.detail}, policy_id,
                     [policy_namespace(policy_id)])
        messages.error(request, f"Policy not deleted: {exc.detail}")
    else:
        audit.record(request, "policy.destroy", 200, {}, policy_id, [policy_namespace(policy_id)])
        messages.success(request, f"Policy {policy_id} deleted.")
    return redirect("console:policies")
