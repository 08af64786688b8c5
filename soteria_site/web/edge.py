"""The edge of every request: what is decided before Django's own middleware runs.

- ListenerMiddleware: with SOTERIA_METRICS_LISTEN_ADDR set, that listener answers only
  /metrics, /healthz and /readyz, and the main listener no longer answers /metrics.
- BodyLimitMiddleware: a body over SOTERIA_MAX_BODY_BYTES is refused (413) from its
  Content-Length, before anything reads it; a body without a length (chunked) gets 411.
- PeerTrustMiddleware: identity and X-Forwarded-* headers count only from peers in
  SOTERIA_TRUSTED_PROXIES (empty: from nobody); a repeated credential header is refused.
- BusyMiddleware: long requests never take a web process's last thread, which stays free
  for probes, metrics and cheap pages.
- ContentSecurityPolicyMiddleware: a strict policy with a per-response nonce.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import secrets
import threading

from django.conf import settings
from django.http import JsonResponse

from soteria_site.core.metrics import REQUESTS_REFUSED

from . import access, headers

log = logging.getLogger(__name__)
PROBE_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})


def refuse(status: int, code: str, detail: str, **response_headers) -> JsonResponse:
    response = JsonResponse({"error": code, "detail": detail}, status=status)
    for name, value in response_headers.items():
        response[name.replace("_", "-")] = value
    return response


class ListenerMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response
        address = settings.SOTERIA_METRICS_LISTEN_ADDR
        self.metrics_port = address.rsplit(":", 1)[1] if address else None

    def __call__(self, request):
        if self.metrics_port is not None:
            on_metrics_port = request.META.get("SERVER_PORT") == self.metrics_port
            if (request.path not in PROBE_PATHS) if on_metrics_port else (request.path == "/metrics"):
                return refuse(404, "not_found", f"No such endpoint on this port: {request.path}")
        return self.get_response(request)


class BodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        limit = settings.SOTERIA_MAX_BODY_BYTES
        length = request.META.get("CONTENT_LENGTH") or ""
        if length:
            if not length.isdigit():
                return refuse(400, "invalid_content_length", "Content-Length is not a number.")
            if int(length) > limit:
                REQUESTS_REFUSED.labels("body_too_large").inc()
                return refuse(413, "body_too_large", f"Request bodies are limited to {limit} bytes "
                                                     "(SOTERIA_MAX_BODY_BYTES).")
        elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
            REQUESTS_REFUSED.labels("length_required").inc()
            return refuse(411, "length_required", "Send the request body with a Content-Length.")
        return self.get_response(request)


def peer_is_trusted(address: str) -> bool:
    try:
        peer = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(peer in network for network in settings.SOTERIA_TRUSTED_PROXIES)


_warned_peers: set[str] = set()


class PeerTrustMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        meta = request.META
        repeated = [h for h in meta.pop(headers.meta_key(headers.REPEATED_MARK), "").split(",") if h]
        peer = meta.get("REMOTE_ADDR", "")
        if not peer_is_trusted(peer):
            sent = [h for h in headers.IDENTITY_HEADERS if headers.meta_key(h) in meta]
            for header in (*headers.IDENTITY_HEADERS, *headers.FORWARDED_HEADERS):
                meta.pop(headers.meta_key(header), None)
            repeated = [h for h in repeated if h == "AUTHORIZATION"]
            if sent and settings.SOTERIA_AUTH_REQUIRED:
                request.soteria_ignored_headers = _ignored_reason(peer)
                access.deny("untrusted_proxy")
                if peer not in _warned_peers and len(_warned_peers) < 256:
                    _warned_peers.add(peer)
                    log.warning("ignored identity headers (%s) from %s: %s", ", ".join(sent), peer,
                                request.soteria_ignored_headers)
        if repeated and settings.SOTERIA_AUTH_REQUIRED:
            access.deny("bad_identity_header")
            return refuse(400, "bad_identity_header",
                          f"Header {', '.join(h.title() for h in repeated)} was sent more than once; "
                          "credentials must arrive exactly once.")
        return self.get_response(request)


def _ignored_reason(peer: str) -> str:
    if not settings.SOTERIA_TRUSTED_PROXIES:
        return ("identity headers are ignored because SOTERIA_TRUSTED_PROXIES is empty (no proxy is trusted); "
                "use a bearer token, or set SOTERIA_TRUSTED_PROXIES to the proxy's address")
    return f"identity headers from {peer} are ignored: that address is not in SOTERIA_TRUSTED_PROXIES"


def expensive(view):
    """Marks a console view whose work can take long (an inventory build, a restore, a batch)."""
    view.soteria_expensive = True
    return view


def _is_expensive(view_func, method: str) -> bool:
    if getattr(view_func, "soteria_expensive", False):
        return True
    action = (getattr(view_func, "actions", None) or {}).get(method.lower())
    return action in getattr(getattr(view_func, "cls", None), "expensive_actions", ())


_slots: threading.BoundedSemaphore | None = None
_slots_lock = threading.Lock()
BUSY_DETAIL = "Soteria is busy with other long requests; try again shortly."


def _long_request_slots() -> threading.BoundedSemaphore:
    global _slots
    with _slots_lock:
        if _slots is None:
            _slots = threading.BoundedSemaphore(max(1, settings.SOTERIA_WEB_THREADS - 1))
        return _slots


def claim_slot(request) -> bool:
    """Take one of this process's long-request slots for the rest of `request` (released by
    BusyMiddleware); False, counted as busy, when none is free. For views that learn late
    that their work is long (a real backup, unlike its dry run)."""
    request = getattr(request, "_request", request)
    if getattr(request, "soteria_slot", False):
        return True
    if not _long_request_slots().acquire(blocking=False):
        REQUESTS_REFUSED.labels("busy").inc()
        return False
    request.soteria_slot = True
    return True


class BusyMiddleware:
    """At most SOTERIA_WEB_THREADS - 1 long requests (views marked `expensive`, viewset
    actions in `expensive_actions`, or views that call `claim_slot`) per process at once: the
    last thread stays free for /healthz, /readyz, /metrics and cheap requests while long ones
    fill the rest. One more long request is refused at once (503 busy) rather than queued,
    since waiting would hold that last thread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        try:
            return self.get_response(request)
        finally:
            if getattr(request, "soteria_slot", False):
                request.soteria_slot = False
                _long_request_slots().release()

    def process_view(self, request, view_func, view_args, view_kwargs):
        if _is_expensive(view_func, request.method) and not claim_slot(request):
            return refuse(503, "busy", BUSY_DETAIL, Retry_After="2")
        return None


# The browsable API's template (rest_framework/base.html) floats two buttons with this exact
# style attribute; it alone is allowed, by hash, so no other inline style can apply.
DRF_STYLE_ATTRIBUTE = "float: right; margin-right: 10px"
_STYLE_ATTRIBUTE_HASH = base64.b64encode(hashlib.sha256(DRF_STYLE_ATTRIBUTE.encode()).digest()).decode()


class ContentSecurityPolicyMiddleware:
    """Pages load nothing but their own resources; the inline style carries the nonce."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        nonce = secrets.token_urlsafe(16)
        request.csp_nonce = nonce
        response = self.get_response(request)
        response.setdefault("Content-Security-Policy", (
            f"default-src 'none'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}'; "
            f"style-src-attr 'unsafe-hashes' 'sha256-{_STYLE_ATTRIBUTE_HASH}'; "
            "img-src 'self' data:; font-src 'self'; connect-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"))
        return response
