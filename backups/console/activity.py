"""The Activity page: what is running now (refreshed in place by static/soteria/console.js from
the fragment view) and the recent actions."""

from __future__ import annotations

from datetime import datetime, timezone

from django.shortcuts import render

from soteria_site.core.errors import SoteriaError
from soteria_site.web import audit
from soteria_site.web.access import VIEW
from soteria_site.web.edge import expensive
from soteria_site.web.permissions import console_permission, visible_namespaces

from ..services import restore as restore_service
from ..services import running as running_service
from .common import error_page, span

POLL_SECONDS = 5


def _running_context(request) -> dict:
    now = running_service.running(visible_namespaces(request))
    clock = datetime.now(timezone.utc)
    rows = [(op, span((clock - op.started).total_seconds()) if op.started else "") for op in now.operations]
    return {"running": rows, "unchecked": now.unchecked, "problems": now.problems, "checked_at": clock,
            "poll_seconds": POLL_SECONDS}


@console_permission(VIEW)
def activity_page(request):
    return render(request, "backups/activity.html", {
        "nav": "activity", "entries": audit.visible_entries(visible_namespaces(request)), **_running_context(request)})


@console_permission(VIEW)
def running_fragment(request):
    """The "Running now" panel alone, for the page's script to swap in."""
    return render(request, "backups/_running.html", _running_context(request))


@expensive
@console_permission(VIEW)
def restores_page(request):
    namespace = request.GET.get("namespace") or None
    context = {"nav": "restores", "namespace": namespace}
    try:
        rows = restore_service.restore_status(namespace, visible=visible_namespaces(request))
    except SoteriaError as exc:
        return error_page(request, "backups/restores.html", context, exc)
    return render(request, "backups/restores.html", {**context, "rows": rows})
