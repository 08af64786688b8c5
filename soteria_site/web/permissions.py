"""Access checks for the API (DRF permission classes) and the console (a decorator).

Views declare the permission they need; namespace scopes are checked with
`require_namespaces` once the request's namespaces are known.
"""

from __future__ import annotations

from functools import wraps

from django.conf import settings
from django.http import JsonResponse
from django.shortcuts import render
from rest_framework import exceptions, permissions

from soteria_site.core.metrics import REQUESTS_REFUSED

from . import access
from .access import grants_of
from .authn import PUBLIC_PREFIXES
from .identity import identity_of
from .throttles import MutationThrottle, console_wait, retry_after


def _denial_reason(request) -> str:
    identity = identity_of(request)
    if identity.method == "anonymous":
        return "no_identity"
    return "group_not_allowed" if not grants_of(request).permissions else "permission_denied"


class HasSoteriaPermission(permissions.BasePermission):
    """The view's `required_permissions` ({action: permission}) as Django permissions."""

    def has_permission(self, request, view):
        if not settings.SOTERIA_AUTH_REQUIRED:
            return True
        needed = getattr(view, "required_permissions", {}).get(getattr(view, "action", None) or request.method.lower())
        if request.user is None or not request.user.is_authenticated:
            access.deny("no_identity")
            return False
        if needed and not request.user.has_perm(f"{access.APP}.{needed}"):
            access.deny(_denial_reason(request))
            self.message = f"{identity_of(request).user} may not {needed.replace('_', ' ')}."
            return False
        return True


def require_namespaces(request, operation: str, *namespaces: str) -> None:
    """Raise 403 unless the caller may do `operation` in every given namespace."""
    grants = grants_of(request)
    outside = sorted({ns for ns in namespaces if not grants.may_in(operation, ns)})
    if outside:
        access.deny("namespace_not_allowed")
        raise exceptions.PermissionDenied(
            f"{identity_of(request).user} may not {operation.replace('_', ' ')} in namespace "
            f"{', '.join(outside)}.")


def visible_namespaces(request) -> frozenset[str] | None:
    """None when every namespace is visible."""
    return grants_of(request).view_namespaces


class RequireIdentityMiddleware:
    """With SOTERIA_AUTH_REQUIRED=true, nothing but the public endpoints answers a request
    without an identity: 401, saying why the request is anonymous."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not settings.SOTERIA_AUTH_REQUIRED or request.path.startswith(PUBLIC_PREFIXES):
            return self.get_response(request)
        identity = identity_of(request)
        refusal = getattr(request, "soteria_refusal", None)
        if identity.method != "anonymous" and refusal is None:
            return self.get_response(request)
        if refusal is None:
            access.deny("no_identity")
            refusal = (401, "not_authenticated", "Authentication credentials were not provided.")
        status, code, detail = refusal
        why = identity.reason or detail
        if request.path.startswith("/v1/"):
            response = JsonResponse({"error": code, "detail": detail, "reason": why}, status=status)
        else:
            response = render(request, "denied.html", {"status": status, "reason": code, "why": why},
                              status=status)
        response["WWW-Authenticate"] = 'Bearer realm="soteria"'
        return response


def console_permission(permission: str, *, throttles=()):
    """Console views: 403 page unless the caller has `permission`; 429 page past the caller's
    rate (posts always count against the mutation rate)."""
    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if settings.SOTERIA_AUTH_REQUIRED and not request.user.has_perm(f"{access.APP}.{permission}"):
                reason = _denial_reason(request)
                access.deny(reason)
                return render(request, "denied.html", {"status": 403, "reason": reason,
                                                       "permission": permission}, status=403)
            wait = console_wait(request, MutationThrottle, *throttles)
            if wait is not None:
                REQUESTS_REFUSED.labels("throttled").inc()
                response = render(request, "denied.html", {"status": 429, "why": retry_after(wait)}, status=429)
                response["Retry-After"] = retry_after(wait)
                return response
            return view(request, *args, **kwargs)
        return wrapped
    return decorator


def may(request, operation: str, *namespaces: str) -> bool:
    """Console form of require_namespaces: False (and a counted denial) instead of raising."""
    try:
        require_namespaces(request, operation, *namespaces)
    except exceptions.PermissionDenied:
        return False
    return True
