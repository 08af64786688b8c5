"""Request rates per identity (DRF throttles): mutations and inventory builds.

Counted in memory per web process (the `throttle` cache), so a request never writes
the database to be counted; with N web workers an identity gets at most N times the
rate. A refusal is 429 with Retry-After, counted as
soteria_requests_refused_total{reason="throttled"}.
"""

from __future__ import annotations

import hashlib
import math

from django.conf import settings
from django.core.cache import caches
from rest_framework.throttling import SimpleRateThrottle

from .identity import identity_of

SAFE = ("GET", "HEAD", "OPTIONS", "TRACE")


class IdentityThrottle(SimpleRateThrottle):
    setting = ""

    @property
    def cache(self):
        return caches["throttle"]

    def get_rate(self):
        return getattr(settings, self.setting)

    def get_cache_key(self, request, view):
        identity = identity_of(request)
        who = (f"{identity.method}:{identity.user}" if identity.method != "anonymous"
               else f"peer:{self.get_ident(request)}")
        return self.cache_format % {"scope": self.scope, "ident": hashlib.sha256(who.encode()).hexdigest()[:32]}


class MutationThrottle(IdentityThrottle):
    """POST and DELETE: backups, restores, policy changes."""

    scope, setting = "mutations", "SOTERIA_THROTTLE_MUTATIONS"

    def allow_request(self, request, view):
        return request.method in SAFE or super().allow_request(request, view)


class InventoryThrottle(IdentityThrottle):
    """Building the inventory lists every PVC, PV and Longhorn volume."""

    scope, setting = "inventory", "SOTERIA_THROTTLE_INVENTORY"


def retry_after(seconds: float | None) -> str:
    return str(max(1, math.ceil(seconds or 1)))


def console_wait(request, *throttles: type[IdentityThrottle]) -> float | None:
    """For console views: None when the request may go on, else the seconds to wait."""
    for throttle_class in throttles:
        throttle = throttle_class()
        if not throttle.allow_request(request, None):
            return throttle.wait() or 1.0
    return None
