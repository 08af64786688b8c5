"""The request headers that carry identity and proxy facts (no Django imports: gunicorn's
configuration reads these before Django is set up)."""

# The contract's identity headers, two families in order of precedence: (user, email, groups).
FAMILIES = {
    "x-auth-request": ("X-Auth-Request-User", "X-Auth-Request-Email", "X-Auth-Request-Groups"),
    "x-forwarded": ("X-Forwarded-User", "X-Forwarded-Email", "X-Forwarded-Groups"),
}
IDENTITY_HEADERS = tuple(h for family in FAMILIES.values() for h in family)
# Facts about the original request that only a trusted proxy may state.
FORWARDED_HEADERS = ("X-Forwarded-Proto", "X-Forwarded-Host", "X-Forwarded-Port", "X-Forwarded-For",
                     "X-Forwarded-Protocol", "X-Forwarded-Ssl", "Forwarded")
# Credentials that must arrive exactly once (gunicorn joins repeats with a comma).
SINGLE_HEADERS = (*IDENTITY_HEADERS, "Authorization")
# Set by gunicorn's pre_request hook (soteria_site/gunicorn.conf.py) to the names of
# SINGLE_HEADERS a request repeated; a client-sent header of this name is discarded first.
REPEATED_MARK = "X-Soteria-Repeated-Headers"


def meta_key(header: str) -> str:
    """`X-Auth-Request-User` -> `HTTP_X_AUTH_REQUEST_USER` (its WSGI environ key)."""
    return "HTTP_" + header.upper().replace("-", "_")


def repeated(header_pairs) -> list[str]:
    """The SINGLE_HEADERS that occur more than once in (name, value) pairs, names as sent upper-cased."""
    wanted = {h.upper() for h in SINGLE_HEADERS}
    seen: dict[str, int] = {}
    for name, _ in header_pairs:
        if name.upper() in wanted:
            seen[name.upper()] = seen.get(name.upper(), 0) + 1
    return sorted(name for name, count in seen.items() if count > 1)
