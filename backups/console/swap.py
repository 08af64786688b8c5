"""The console's swap page (docs/swap.md): after a restore, the plan for swapping the restored
claim in under the workload that mounts its source, an explicit confirmation, each step's
result, and undo. The same service as POST /v1/restores/swap and .../undo."""

from __future__ import annotations

from django import forms
from django.shortcuts import render
from django.views.decorators.http import require_POST

from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import DNS_SUBDOMAIN_MAX, dns_label_error, dns_subdomain_error
from soteria_site.web import audit
from soteria_site.web.access import RESTORE
from soteria_site.web.edge import BUSY_DETAIL, claim_slot, expensive
from soteria_site.web.identity import requested_by
from soteria_site.web.permissions import console_permission, may

from ..services import swap as swap_service

TEMPLATE = "backups/swap.html"


def _checked(check):
    def validator(value: str) -> None:
        problem = check(value)
        if problem:
            raise forms.ValidationError(problem)
    return validator


class SwapForm(forms.Form):
    namespace = forms.CharField(max_length=63, validators=[_checked(dns_label_error)])
    pvc = forms.CharField(max_length=DNS_SUBDOMAIN_MAX, required=False, validators=[_checked(dns_subdomain_error)])
    restored_pvc = forms.CharField(max_length=DNS_SUBDOMAIN_MAX, required=False,
                                   validators=[_checked(dns_subdomain_error)])
    # The restores page links here with the restored claim and its `source` (namespace/pvc).
    source = forms.CharField(max_length=63 + 1 + DNS_SUBDOMAIN_MAX, required=False)
    confirm = forms.BooleanField(required=False, label="I have read the plan: scale the workload down and swap")

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        if not data.get("pvc") and data.get("source"):
            namespace, _, pvc = data["source"].partition("/")
            if namespace != data["namespace"]:
                raise forms.ValidationError(f"the restored claim is in namespace {data['namespace']} and its source "
                                            f"in {namespace or '?'}: a workload mounts only claims of its own "
                                            "namespace, so this restore cannot be swapped into place")
            problem = dns_subdomain_error(pvc)
            if problem:
                raise forms.ValidationError(f"source: {problem}")
            data["pvc"] = pvc
        if not data.get("pvc"):
            raise forms.ValidationError("pvc: the claim to swap is missing")
        return data


def _audit_step(request, result, step) -> None:
    status, body = (200, {}) if step.status != "failed" else (502, {"error": "step_failed", "detail": step.detail})
    audit.record(request, f"swap.{result.operation}.step", status, body,
                 f"{result.namespace}/{result.pvc} step {step.number}/{len(result.steps)} {step.action} "
                 f"{step.status}: {step.target}", [result.namespace])


def _page(request, form, *, shown=None, in_place=None, error=None, **context):
    """`shown`: the plan or result whose steps the page lists; `in_place`: the undo plan of a
    swap in place (the page offers its undo)."""
    shown = shown or in_place
    return render(request, TEMPLATE, {"nav": "restores", "form": form, "shown": shown, "in_place": in_place,
                                      "error": error, "steps": error.extra.get("steps") if error else None,
                                      **context}, status=error.status if error else 200)


def _in_place(namespace: str, pvc: str):
    try:
        return swap_service.status(namespace, pvc)
    except SoteriaError:
        return None


@expensive
@console_permission(RESTORE)
def swap_page(request):
    """GET: the plan (a dry run), or the undo plan of a swap in place. POST: the swap, confirmed."""
    form = SwapForm(request.POST or request.GET)
    if not form.is_valid():
        return _page(request, form, invalid=True)
    data = form.cleaned_data
    if not may(request, RESTORE, data["namespace"]):
        return render(request, "denied.html", {"status": 403, "reason": "namespace_not_allowed",
                                               "permission": RESTORE}, status=403)
    in_place = None
    try:
        in_place = swap_service.status(data["namespace"], data["pvc"])
        if request.method != "POST" or in_place is not None:
            if in_place is not None:
                return _page(request, form, in_place=in_place)
            plan = swap_service.swap(data["namespace"], data["pvc"], data["restored_pvc"], requested_by(request),
                                     dry_run=True)
            return _page(request, form, shown=plan, can_swap=True)
        if not data["confirm"]:
            plan = swap_service.swap(data["namespace"], data["pvc"], data["restored_pvc"], requested_by(request),
                                     dry_run=True)
            return _page(request, form, shown=plan, can_swap=True, unconfirmed=True)
        if not claim_slot(request):
            return _page(request, form, busy=BUSY_DETAIL)
        result = swap_service.swap(data["namespace"], data["pvc"], data["restored_pvc"], requested_by(request),
                                   on_step=lambda r, s: _audit_step(request, r, s))
    except SoteriaError as exc:
        if request.method == "POST":
            audit.record(request, "swap.create", exc.status, {"error": exc.code, "detail": exc.detail},
                         f"{data['namespace']}/{data['pvc']}", [data["namespace"]])
        return _page(request, form, error=exc, in_place=in_place or _in_place(data["namespace"], data["pvc"]))
    audit.record(request, "swap.create", 200, {}, f"{data['namespace']}/{data['pvc']}", [data["namespace"]])
    return _page(request, form, shown=result, in_place=_in_place(data["namespace"], data["pvc"]), done=True)


@expensive
@require_POST
@console_permission(RESTORE)
def undo_action(request):
    form = SwapForm(request.POST)
    if not form.is_valid():
        return _page(request, form, invalid=True)
    data = form.cleaned_data
    if not may(request, RESTORE, data["namespace"]):
        return render(request, "denied.html", {"status": 403, "reason": "namespace_not_allowed",
                                               "permission": RESTORE}, status=403)
    target = f"{data['namespace']}/{data['pvc']}"
    try:
        if not data["confirm"]:
            plan = swap_service.undo(data["namespace"], data["pvc"], requested_by(request), dry_run=True)
            return _page(request, form, in_place=plan, unconfirmed=True)
        if not claim_slot(request):
            return _page(request, form, busy=BUSY_DETAIL)
        result = swap_service.undo(data["namespace"], data["pvc"], requested_by(request),
                                   on_step=lambda r, s: _audit_step(request, r, s))
    except SoteriaError as exc:
        audit.record(request, "swap.undo", exc.status, {"error": exc.code, "detail": exc.detail}, target,
                     [data["namespace"]])
        return _page(request, form, error=exc, in_place=_in_place(data["namespace"], data["pvc"]))
    audit.record(request, "swap.undo", 200, {}, target, [data["namespace"]])
    return _page(request, form, shown=result, done=True)

