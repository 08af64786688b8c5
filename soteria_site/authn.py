"""Who is calling: identity from the proxy's headers or from a bearer token.

One function turns request headers into an identity (user, email, groups);
the middleware uses it for every request and mirrors the identity into Django
users and groups (remote-user style, through SoteriaBackend), and the DRF
authentication classes use what the middleware found (enforcing CSRF for
cookie-borne browser requests) or check a bearer token in constant time.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
from dataclasses import dataclass

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import authentication, exceptions

from . import access

log = logging.getLogger(__name__)
TOKEN_PREFIX = "token:"
# The contract's headers, in order of precedence.
HEADER_SETS = (("HTTP_X_AUTH_REQUEST_USER", "HTTP_X_AUTH_REQUEST_EMAIL", "HTTP_X_AUTH_REQUEST_GROUPS"),
               ("HTTP_X_FORWARDED_USER", "HTTP_X_FORWARDED_EMAIL", "HTTP_X_FORWARDED_GROUPS"))


@dataclass(frozen=True)
class Identity:
    user: str
    email: str
    groups: tuple[str, ...]
    method: str  # header | token | anonymous


ANONYMOUS = Identity("anonymous", "", (), "anonymous")


def parse_groups(value: str) -> tuple[str, ...]:
    parts = value.replace(";", ",").split(",")
    return tuple(dict.fromkeys(g for g in (access.normalise_group(p) for p in parts) if g))


def identity_from_headers(meta) -> Identity | None:
    """The proxy's identity headers (X-Auth-Request-* first, then X-Forwarded-*), or None."""
    def first(index: int) -> str:
        for headers in HEADER_SETS:
            value = (meta.get(headers[index]) or "").strip()
            if value:
                return value
        return ""

    user, email = first(0), first(1)
    if not (user or email):
        return None
    return Identity(user=user or email, email=email, groups=parse_groups(first(2)), method="header")


def peer_is_trusted(meta) -> bool:
    if not settings.SOTERIA_TRUSTED_PROXIES:
        return True
    try:
        peer = ipaddress.ip_address(meta.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(peer in network for network in settings.SOTERIA_TRUSTED_PROXIES)


class SoteriaBackend(RemoteUserBackend):
    """Mirrors identities into Django users and groups; permissions follow from the groups
    through configuration (soteria_site.access), never from rows an admin edits."""

    create_unknown_user = True

    def authenticate(self, request, remote_user=None, email="", groups=(), **kwargs):
        if not remote_user:
            return None
        user = _mirror(remote_user, email, groups)
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        if not user_obj.is_active or user_obj.is_anonymous or obj is not None:
            return set()
        if user_obj.username.startswith(TOKEN_PREFIX):
            grants = access.EVERYTHING
        else:
            grants = access.grants_for_groups(user_obj.groups.values_list("name", flat=True))
        return {f"{access.APP}.{p}" for p in grants.permissions}

    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return self.get_all_permissions(user_obj, obj)

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj, obj)


def _mirror(username: str, email: str, groups) -> User:
    for attempt in range(2):
        try:
            with transaction.atomic():
                user, _ = User.objects.get_or_create(username=username[:150])
                if email and user.email != email:
                    user.email = email
                    user.save(update_fields=["email"])
                wanted = set(groups)
                if set(user.groups.values_list("name", flat=True)) != wanted:
                    user.groups.set([Group.objects.get_or_create(name=g[:150])[0] for g in wanted])
                return user
        except IntegrityError:  # a parallel first request created the same row
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


class ProxyIdentityMiddleware:
    """Sets request.soteria_identity and request.user from the proxy's headers.

    Runs after Django's AuthenticationMiddleware. Headers from an untrusted peer
    are ignored (and counted). No session is created: the proxy sends the
    headers with every request.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.soteria_identity = None
        if settings.SOTERIA_AUTH_REQUIRED:
            identity = identity_from_headers(request.META)
            if identity and not peer_is_trusted(request.META):
                access.deny("untrusted_proxy")
                log.warning("ignored identity headers from untrusted peer %s", request.META.get("REMOTE_ADDR"))
                identity = None
            if identity:
                user = auth.authenticate(request, remote_user=identity.user, email=identity.email,
                                         groups=identity.groups)
                if user is not None:
                    request.user = user
                    request.soteria_identity = identity
        return self.get_response(request)


def bearer_token(request) -> str | None:
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def token_name(presented: str) -> str | None:
    """The configured name of a presented token, compared in constant time against all of them."""
    found = None
    for name, token in settings.SOTERIA_AUTH_BEARER_TOKENS:
        if hmac.compare_digest(presented.encode(), token.encode()):
            found = name
    return found


class BearerTokenAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request):
        if not settings.SOTERIA_AUTH_REQUIRED:
            return None
        presented = bearer_token(request._request)
        if presented is None:
            return None
        name = token_name(presented) if presented else None
        if name is None:
            access.deny("bad_token")
            raise exceptions.AuthenticationFailed("Invalid bearer token.")
        identity = Identity(user=f"{TOKEN_PREFIX}{name}", email="", groups=(), method="token")
        user = _mirror(identity.user, "", ())
        request._request.soteria_identity = identity
        return (user, identity)

    def authenticate_header(self, request):
        return 'Bearer realm="soteria"'


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


class ProxyHeaderAuthentication(authentication.BaseAuthentication):
    """The identity the middleware found in the proxy's headers, with CSRF protection:
    an unsafe request needs a valid CSRF token, or must be JSON from Soteria's own origin."""

    def authenticate(self, request):
        identity = getattr(request._request, "soteria_identity", None)
        if identity is None or identity.method != "header":
            return None
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE"):
            reason = csrf_failure(request._request)
            if reason:
                access.deny("csrf")
                raise exceptions.PermissionDenied(f"CSRF check failed: {reason}")
        return (request._request.user, identity)

    def authenticate_header(self, request):
        return 'Bearer realm="soteria"'


def csrf_failure(request) -> str | None:
    """Why an unsafe cookie-borne request is refused, or None."""
    if request.content_type == "application/json":
        origin = request.headers.get("Origin")
        if origin is None or origin in _own_origins(request):
            return None
        return f"origin {origin} is not Soteria's"
    check = _CsrfCheck(lambda r: None)
    check.process_request(request)
    return check.process_view(request, None, (), {})


def _own_origins(request) -> set[str]:
    return {f"{request.scheme}://{request.get_host()}", *settings.CSRF_TRUSTED_ORIGINS}


def identity_of(request) -> Identity:
    if not settings.SOTERIA_AUTH_REQUIRED:
        return ANONYMOUS
    return getattr(request, "soteria_identity", None) or getattr(getattr(request, "_request", None),
                                                                 "soteria_identity", None) or ANONYMOUS


def grants_of(request) -> access.Grants:
    identity = identity_of(request)
    if not settings.SOTERIA_AUTH_REQUIRED or identity.method == "token":
        return access.EVERYTHING
    if identity.method == "header":
        return access.grants_for_groups(identity.groups)
    return access.NOTHING
