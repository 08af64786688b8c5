"""What the console's views share: durations, refusals, and the digest of a plan."""

from __future__ import annotations

import hashlib
import json

from django.shortcuts import render

from soteria_site.core.errors import SoteriaError

HEALTH_STYLE = {"fresh": "ok", "stale": "bad", "never backed up": "bad", "last backup failed": "bad",
                "backup stuck": "bad", "backup in progress": "info", "not bound": "muted",
                "unsupported driver": "muted", "volume missing in Longhorn": "warn"}


def span(seconds: float) -> str:
    """A duration as people say it: 45 s, 12 min, 5 h, 3 d."""
    seconds = max(seconds, 0)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit}"
    return f"{int(seconds)} s"


def denied(request, permission):
    return render(request, "denied.html", {"status": 403, "reason": "namespace_not_allowed",
                                           "permission": permission}, status=403)


def error_page(request, template, context, exc: SoteriaError):
    return render(request, template, {**context, "error": exc}, status=exc.status)


def digest(*parts) -> str:
    """A short fingerprint of what a plan would do: the confirmation carries it, and a plan made
    again at confirmation time must have the same one, or nothing runs."""
    text = json.dumps(parts, default=str, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]



CHANGED = ("Nothing was done: the plan changed since you saw it. This is the new plan; "
           "confirm again if it is still what you want.")
