"""Who is calling: the identity a request carries, and the name that goes into
`requested_by`, Events and logs.

An identity is decided by how the request authenticated (proxy headers, a bearer
token, or nothing), never by what its name looks like. Proxy headers come from one
family as a whole (soteria_site.web.headers.FAMILIES): a client cannot add
X-Forwarded-Groups to a proxy that sets only X-Auth-Request-User.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from . import headers

MAX_USER, MAX_EMAIL, MAX_GROUPS_HEADER, MAX_GROUPS = 150, 254, 4096, 100


@dataclass(frozen=True)
class Identity:
    user: str
    email: str
    groups: tuple[str, ...]
    method: str  # header | token | anonymous
    # Why a request is anonymous (shown by 401 answers), else "".
    reason: str = ""


ANONYMOUS = Identity("anonymous", "", (), "anonymous")


class BadIdentityHeader(ValueError):
    """Identity headers that cannot be taken as they are (too long, control characters)."""


def normalise_group(group: str) -> str:
    return group.strip().lstrip("/")


def parse_groups(value: str) -> tuple[str, ...]:
    parts = value.replace(";", ",").split(",")
    return tuple(dict.fromkeys(g for g in (normalise_group(p) for p in parts) if g))


def header_family(meta) -> str | None:
    """The family the identity is taken from: the pinned one, or in `auto` X-Auth-Request-*
    when any of its headers is present, else X-Forwarded-* when any of those is."""
    pinned = settings.SOTERIA_AUTH_HEADERS
    candidates = list(headers.FAMILIES) if pinned == "auto" else [pinned]
    for family in candidates:
        if any(headers.meta_key(h) in meta for h in headers.FAMILIES[family]):
            return family
    return None


def _value(meta, header: str, limit: int) -> str:
    value = (meta.get(headers.meta_key(header)) or "").strip()
    if len(value) > limit or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise BadIdentityHeader(f"{header} is longer than {limit} characters or holds control characters")
    return value


def identity_from_headers(meta) -> Identity | None:
    """The proxy's identity (user, email, groups from one family), or None when it sent none."""
    family = header_family(meta)
    if family is None:
        return None
    user_header, email_header, groups_header = headers.FAMILIES[family]
    user, email = _value(meta, user_header, MAX_USER), _value(meta, email_header, MAX_EMAIL)
    groups = parse_groups(_value(meta, groups_header, MAX_GROUPS_HEADER))
    if len(groups) > MAX_GROUPS:
        raise BadIdentityHeader(f"{groups_header} lists more than {MAX_GROUPS} groups")
    if not (user or email):
        return None
    return Identity(user=user or email, email=email, groups=groups, method="header")


def identity_of(request) -> Identity:
    """The identity the middleware found (ANONYMOUS when auth is off or none was found)."""
    if not settings.SOTERIA_AUTH_REQUIRED:
        return ANONYMOUS
    request = getattr(request, "_request", request)  # a DRF request wraps Django's
    return getattr(request, "soteria_identity", None) or ANONYMOUS


def requested_by(request) -> str:
    return identity_of(request).user
