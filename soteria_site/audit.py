"""Every mutating API request leaves a trace: a log line and a row the console lists.

(The durable trail is the Kubernetes Events the services record on the PVCs
and the policy Secret; the rows here may vanish with the pod.)
"""

from __future__ import annotations

import logging

from django.db import DatabaseError
from rest_framework import viewsets

from .identity import requested_by
from .models import AuditEntry

log = logging.getLogger("soteria.audit")
SAFE = ("GET", "HEAD", "OPTIONS", "TRACE")
KEEP = 1000


def _target(data) -> str:
    if not isinstance(data, dict):
        return ""
    source = "/".join(str(data[k]) for k in ("namespace", "pvc") if isinstance(data.get(k), str) and data[k])
    target = "/".join(str(data[k]) for k in ("target_namespace", "target_pvc") if isinstance(data.get(k), str)
                      and data[k])
    return f"{source} -> {target}" if target else source


def record(request, action: str, status: int, body, target: str = "") -> None:
    result = "ok" if status < 400 else (body.get("error") if isinstance(body, dict) else "") or str(status)
    detail = (body.get("detail") if isinstance(body, dict) and status >= 400 else "") or ""
    if isinstance(body, dict) and body.get("dry_run"):
        result = "dry_run"
    actor = requested_by(request)
    log.info("actor=%s action=%s target=%s status=%s result=%s %s", actor, action, target or "-", status, result,
             detail)
    try:
        AuditEntry.objects.create(actor=actor[:254], method=request.method, action=action[:64], target=target[:512],
                                  status=status, result=str(result)[:64], detail=str(detail)[:2000])
        stale = AuditEntry.objects.order_by("-at").values_list("id", flat=True)[KEEP:KEEP + 100]
        if stale:
            AuditEntry.objects.filter(id__in=list(stale)).delete()
    except DatabaseError:
        log.exception("could not store the audit entry")


class AuditedViewSet(viewsets.ViewSet):
    """A ViewSet whose unsafe requests are audited, whatever their outcome."""

    audit_name = ""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in SAFE:
            try:
                data = request.data
            except Exception:  # noqa: BLE001 - an unparsable body is audited without a target
                data = None
            action = f"{self.audit_name or self.basename or type(self).__name__}.{self.action or request.method.lower()}"
            target = _target(data) or str(self.kwargs.get("pk", ""))
            record(request, action, response.status_code, getattr(response, "data", None), target)
        return response
