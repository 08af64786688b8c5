"""Every mutating request that authenticated leaves a trace: a log line and a row the
console's Activity page lists (each viewer sees the rows of the namespaces it may view).

A request that failed authentication is neither parsed nor recorded: an anonymous
client must not be able to write rows. The log line quotes every value a caller
supplied, so a name cannot forge another line or field.

(The durable trail is the Kubernetes Events the services record on the PVCs and the
policy Secret; the rows here may vanish with the pod.)
"""

from __future__ import annotations

import json
import logging

from django.conf import settings
from django.db import DatabaseError
from rest_framework import viewsets

from .identity import identity_of, requested_by
from .models import AuditEntry

log = logging.getLogger("soteria.audit")
SAFE = ("GET", "HEAD", "OPTIONS", "TRACE")
KEEP = 1000
NAMESPACE_KEYS = ("namespace", "target_namespace")


def _quoted(value) -> str:
    """A value as a JSON string: quotes, newlines and control characters escaped."""
    return json.dumps(str(value))


def _target(data) -> str:
    if not isinstance(data, dict):
        return ""
    source = "/".join(str(data[k]) for k in ("namespace", "pvc") if isinstance(data.get(k), str) and data[k])
    target = "/".join(str(data[k]) for k in ("target_namespace", "target_pvc") if isinstance(data.get(k), str)
                      and data[k])
    return f"{source} -> {target}" if target else source


def _namespaces(data) -> list[str]:
    if not isinstance(data, dict):
        return []
    return [data[k] for k in NAMESPACE_KEYS if isinstance(data.get(k), str) and data[k]]


def record(request, action: str, status: int, body, target: str = "", namespaces=()) -> None:
    """Log and store one mutating request; `namespaces` decides who sees the row."""
    result = "ok" if status < 400 else (body.get("error") if isinstance(body, dict) else "") or str(status)
    detail = (body.get("detail") if isinstance(body, dict) and status >= 400 else "") or ""
    if isinstance(body, dict) and body.get("dry_run"):
        result = "dry_run"
    actor = requested_by(request)
    log.info("actor=%s auth=%s action=%s target=%s status=%s result=%s detail=%s", _quoted(actor),
             identity_of(request).method, _quoted(action), _quoted(target or "-"), status, _quoted(result),
             _quoted(detail))
    names = sorted({n for n in namespaces if n})
    try:
        AuditEntry.objects.create(actor=actor[:254], method=request.method, action=action[:64], target=target[:512],
                                  namespaces="".join(f"|{n}" for n in names) + ("|" if names else ""),
                                  status=status, result=str(result)[:64], detail=str(detail)[:2000])
        stale = AuditEntry.objects.order_by("-at").values_list("id", flat=True)[KEEP:KEEP + 100]
        if stale:
            AuditEntry.objects.filter(id__in=list(stale)).delete()
    except DatabaseError:
        log.exception("could not store the audit entry")


def visible_entries(visible: frozenset[str] | None, limit: int = 200) -> list[AuditEntry]:
    """The newest entries a viewer may see: all of them, or those whose every namespace is visible."""
    if visible is None:
        return list(AuditEntry.objects.all()[:limit])
    entries = []
    for entry in AuditEntry.objects.exclude(namespaces="").iterator():
        if set(entry.namespace_list) <= visible:
            entries.append(entry)
            if len(entries) == limit:
                break
    return entries


def authenticated(request) -> bool:
    """Whether DRF authenticated the request (always, with auth off)."""
    return not settings.SOTERIA_AUTH_REQUIRED or getattr(request, "_authenticator", None) is not None


class AuditedViewSet(viewsets.ViewSet):
    """A ViewSet whose unsafe, authenticated requests are audited, whatever their outcome;
    a request that failed authentication is neither parsed nor recorded."""

    audit_name = ""

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if request.method not in SAFE and authenticated(request):
            try:
                data = request.data  # bounded by SOTERIA_MAX_BODY_BYTES before anything read it
            except Exception:  # noqa: BLE001 - an unparsable body is audited without a target
                data = None
            action = f"{self.audit_name or self.basename or type(self).__name__}.{self.action or request.method.lower()}"
            target = _target(data) or str(self.kwargs.get("pk", ""))
            namespaces = _namespaces(data) or self.audit_namespaces(request, self.kwargs)
            record(request, action, response.status_code, getattr(response, "data", None), target, namespaces)
        return response

    def audit_namespaces(self, request, kwargs) -> list[str]:
        """Namespaces of a request without a body (e.g. DELETE by id); override where known."""
        return []
