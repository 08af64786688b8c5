"""Authentication on Django's remote-user rails.

`IdentityMiddleware` (a RemoteUserMiddleware) decides every request's identity once:
a bearer token from SOTERIA_AUTH_BEARER_TOKENS, else the proxy's identity headers
(which soteria_site.web.edge has already removed unless the peer is a trusted proxy), else
anonymous with the reason. `ProxyUserBackend` (a RemoteUserBackend) mirrors proxy
identities into Django users and groups, touching the database only when it has not
seen that user with those groups before; permissions are computed in memory from the
identity (soteria_site.web.access), never from rows. No session is created. The DRF
authentication classes hand DRF what the middleware found, with CSRF protection for
header-authenticated (browser) requests.
"""

from __future__ import annotations

import hmac
import threading
from collections import OrderedDict
from dataclasses import replace

from django.conf import settings
from django.contrib import auth
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.contrib.auth.models import Group, User
from django.db import IntegrityError, transaction
from django.middleware.csrf import CsrfViewMiddleware
from rest_framework import authentication, exceptions

from . import access
from .identity import ANONYMOUS, BadIdentityHeader, Identity, identity_from_headers

TOKEN_PREFIX = "token:"
PUBLIC_PREFIXES = ("/healthz", "/readyz", "/metrics", "/static/")
MIRROR_CACHE_SIZE = 2048


class ProxyUserBackend(RemoteUserBackend):
    """Proxy identities as Django users; permissions from the identity, in memory."""

    create_unknown_user = True

    def authenticate(self, request, remote_user=None, identity: Identity | None = None):
        if not remote_user or identity is None or identity.method != "header":
            return None
        user = mirrored_user(identity)
        user.soteria_grants = access.grants_for(identity)
        return user if self.user_can_authenticate(user) else None

    def get_all_permissions(self, user_obj, obj=None):
        grants = getattr(user_obj, "soteria_grants", None)
        if grants is None or not user_obj.is_active or obj is not None:
            return set()
        return {f"{access.APP}.{p}" for p in grants.permissions}

    def get_user_permissions(self, user_obj, obj=None):
        return set()

    def get_group_permissions(self, user_obj, obj=None):
        return self.get_all_permissions(user_obj, obj)

    def has_perm(self, user_obj, perm, obj=None):
        return perm in self.get_all_permissions(user_obj, obj)


# username -> (pk, email, groups) of users this process has mirrored, most recent last.
_mirrored: OrderedDict[str, tuple[int, str, frozenset[str]]] = OrderedDict()
_mirrored_lock = threading.Lock()


def mirrored_user(identity: Identity) -> User:
    """A fresh User for the identity, its row and groups brought up to date only when this
    process has not seen it with the same email and groups."""
    groups = frozenset(identity.groups)
    with _mirrored_lock:
        known = _mirrored.get(identity.user)
        if known is not None and known[1:] == (identity.email, groups):
            _mirrored.move_to_end(identity.user)
            return User(pk=known[0], username=identity.user, email=identity.email)
    pk = _mirror(identity.user, identity.email, groups)
    with _mirrored_lock:
        _mirrored[identity.user] = (pk, identity.email, groups)
        while len(_mirrored) > MIRROR_CACHE_SIZE:
            _mirrored.popitem(last=False)
    return User(pk=pk, username=identity.user, email=identity.email)


def forget_mirrored_users() -> None:
    """Tests: start from an empty cache."""
    with _mirrored_lock:
        _mirrored.clear()


def _mirror(username: str, email: str, groups: frozenset[str]) -> int:
    """The user's row, written only when it is missing or its email or groups changed. Reading
    first takes no lock (SQLite in WAL mode), so a busy writer elsewhere never stalls a request."""
    user = User.objects.filter(username=username).first()
    if (user is not None and (not email or user.email == email)
            and set(user.groups.values_list("name", flat=True)) == groups):
        return user.pk
    for attempt in range(2):
        try:
            with transaction.atomic():
                user, _ = User.objects.get_or_create(username=username)
                if email and user.email != email:
                    user.email = email
                    user.save(update_fields=["email"])
                if set(user.groups.values_list("name", flat=True)) != groups:
                    user.groups.set([Group.objects.get_or_create(name=g[:150])[0] for g in groups])
                return user.pk
        except IntegrityError:  # a parallel first request created the same row
            if attempt:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


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


def _token_user(identity: Identity) -> User:
    """Tokens are configuration, not people: an in-memory user, never a row."""
    user = User(username=identity.user)
    user.soteria_grants = access.grants_for(identity)
    return user


class IdentityMiddleware(RemoteUserMiddleware):
    """Sets request.soteria_identity (and request.user) for every non-public request.

    A bearer token, when sent, decides alone: a wrong one is refused later (401,
    counted as bad_token) even if identity headers came with it.
    """

    sync_capable, async_capable = True, False
    force_logout_if_no_header = False

    def process_request(self, request):
        request.soteria_identity = ANONYMOUS
        request.soteria_refusal = None  # (status, code, detail) when credentials are refused
        if not settings.SOTERIA_AUTH_REQUIRED or request.path.startswith(PUBLIC_PREFIXES):
            return
        presented = bearer_token(request)
        if presented is not None:
            name = token_name(presented) if presented else None
            if name is None:
                access.deny("bad_token")
                request.soteria_refusal = (401, "authentication_failed", "Invalid bearer token.")
                return
            identity = Identity(user=f"{TOKEN_PREFIX}{name}", email="", groups=(), method="token")
            request.user, request.soteria_identity = _token_user(identity), identity
            return
        try:
            identity = identity_from_headers(request.META)
        except BadIdentityHeader as exc:
            access.deny("bad_identity_header")
            request.soteria_refusal = (400, "bad_identity_header", f"Identity headers refused: {exc}.")
            return
        if identity is None:
            request.soteria_identity = replace(ANONYMOUS, reason=_anonymous_reason(request))
            return
        user = auth.authenticate(request, remote_user=identity.user, identity=identity)
        if user is not None:
            request.user, request.soteria_identity = user, identity


def _anonymous_reason(request) -> str:
    ignored = getattr(request, "soteria_ignored_headers", "")
    return ignored or "the request carries no identity headers and no bearer token"


class BearerTokenAuthentication(authentication.BaseAuthentication):
    """DRF's view of a request the middleware authenticated with a bearer token."""

    def authenticate(self, request):
        identity = getattr(request._request, "soteria_identity", ANONYMOUS)
        if identity.method != "token":
            return None
        return (request._request.user, identity)

    def authenticate_header(self, request):
        return 'Bearer realm="soteria"'


class _CsrfCheck(CsrfViewMiddleware):
    def _reject(self, request, reason):
        return reason


class ProxyHeaderAuthentication(authentication.BaseAuthentication):
    """The identity the middleware found in the proxy's headers, with CSRF protection:
    an unsafe request needs a valid CSRF token, or must be JSON from Soteria's own origin."""

    def authenticate(self, request):
        identity = getattr(request._request, "soteria_identity", ANONYMOUS)
        if identity.method != "header":
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
