"""Every API error as JSON: {"error": "<stable code>", "detail": "<message>", ...}.

Installed as DRF's EXCEPTION_HANDLER. Soteria's own errors keep their status
and code; DRF's errors get stable codes; anything unexpected is logged and
answered 500 without a stack trace.
"""

from __future__ import annotations

import logging

from django.http import Http404
from drf_spectacular.utils import OpenApiResponse
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response

from soteria_site.core.errors import SoteriaError
from soteria_site.core.metrics import REQUESTS_REFUSED

from .throttles import retry_after

log = logging.getLogger(__name__)


class Busy(exceptions.APIException):
    """Every long-request slot of this web process is taken (soteria_site.web.edge.claim_slot)."""

    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "busy"


_DRF_CODES = {
    exceptions.ParseError: "invalid_json",
    exceptions.ValidationError: "invalid_input",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "forbidden",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.Throttled: "throttled",
    Busy: "busy",
}


def error_body(code: str, detail: str, **extra) -> dict:
    return {"error": code, "detail": detail, **extra}


class ErrorResponse(serializers.Serializer):
    """The schema of every error body (docs/api.md): a stable code and a message, and the
    extra fields some errors carry."""

    error = serializers.CharField(help_text="stable error code (docs/api.md)")
    detail = serializers.CharField()
    field = serializers.CharField(required=False, help_text="the invalid input field")
    errors = serializers.DictField(required=False, help_text="every field error of an invalid body")
    reason = serializers.CharField(required=False, help_text="why a request is anonymous (401)")
    cleanup = serializers.DictField(required=False, help_text="what a failed restore removed again")
    steps = serializers.ListField(child=serializers.DictField(), required=False,
                                  help_text="a swap or undo that stopped: each step, done or not (docs/swap.md)")


# Why each error status is answered, as the schema describes it.
_WHEN = {
    400: "Invalid input, or a malformed request (an identity header sent twice, a header with control characters)",
    401: "No identity, or a wrong bearer token (with SOTERIA_AUTH_REQUIRED=true)",
    403: "The caller lacks the permission, or the namespace is outside its scope",
    404: "Unknown namespace, PVC, backup or policy",
    409: "Conflict with the cluster's state (a target PVC exists, a backup is running, ...)",
    413: "A body over SOTERIA_MAX_BODY_BYTES",
    414: "A request line (path and query) over 4094 bytes",
    415: "A body that is not application/json",
    422: "A PVC the configured driver cannot handle",
    429: "Too many requests (Retry-After says when to retry)",
    431: "Request headers too many (over 100) or too long (over 8190 bytes each)",
    502: "Kubernetes or Longhorn answered with a failure",
    503: "Kubernetes or Longhorn unreachable, or Soteria busy",
    504: "Kubernetes or Longhorn too slow",
}
# Every endpoint may answer these (a malformed request, authentication, permission, rate, upstreams).
# 400 (a malformed header), 414 and 431 come from gunicorn before Soteria sees the request,
# as JSON all the same (soteria_site/gunicorn.conf.py).
COMMON_ERRORS = (400, 401, 403, 414, 429, 431, 502, 503, 504)


def error_responses(*statuses: int) -> dict:
    """`extend_schema(responses=...)` entries for the common errors and `statuses`, each with
    the error body's schema."""
    return {code: OpenApiResponse(ErrorResponse, description=_WHEN[code])
            for code in sorted({*COMMON_ERRORS, *statuses})}


def exception_handler(exc, context):
    if isinstance(exc, SoteriaError):
        return Response(error_body(exc.code, exc.detail, **exc.extra), status=exc.status)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    if isinstance(exc, exceptions.ValidationError):
        return Response(_validation_body(exc.detail), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), "error")
        headers = {}
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if isinstance(exc, Busy):
            headers["Retry-After"] = "2"
        if isinstance(exc, exceptions.Throttled):
            REQUESTS_REFUSED.labels("throttled").inc()
            headers["Retry-After"] = retry_after(exc.wait)
        return Response(error_body(code, str(exc.detail)), status=exc.status_code, headers=headers)
    view = context.get("view")
    log.exception("unhandled error in %s", type(view).__name__ if view else "API")
    return Response(error_body("internal_error", "Internal error; see Soteria's log."),
                    status=status.HTTP_500_INTERNAL_SERVER_ERROR)


def _validation_body(detail) -> dict:
    """The first field error as `field` + `detail`; all of them under `errors`."""
    if isinstance(detail, dict):
        field, messages = next(iter(detail.items()))
        message = _first_message(messages)
        if field == "non_field_errors":
            return error_body("invalid_input", message, errors=detail)
        return error_body("invalid_input", f"{field}: {message}", field=field, errors=detail)
    return error_body("invalid_input", _first_message(detail))


def _first_message(messages) -> str:
    while isinstance(messages, (list, dict)):
        if not messages:
            return "Invalid input."
        messages = messages[0] if isinstance(messages, list) else next(iter(messages.values()))
    return str(messages)


def _wants_json(request) -> bool:
    return request.path.startswith("/v1/") or "application/json" in request.headers.get("Accept", "")


def page_not_found(request, exception=None):
    """Django's 404 handler: JSON under /v1/, Django's page elsewhere."""
    from django.http import JsonResponse
    from django.views import defaults

    if _wants_json(request):
        return JsonResponse(error_body("not_found", f"No such endpoint: {request.path}"), status=404)
    return defaults.page_not_found(request, exception)


def server_error(request):
    """Django's 500 handler: JSON under /v1/, never a stack trace."""
    from django.http import JsonResponse
    from django.views import defaults

    if _wants_json(request):
        return JsonResponse(error_body("internal_error", "Internal error; see Soteria's log."), status=500)
    return defaults.server_error(request)
