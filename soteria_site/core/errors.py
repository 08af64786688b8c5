"""Soteria's own errors.

Clients translate SDK and HTTP failures into these; services raise them for
domain rules; the API's exception handler turns each into JSON with a stable
`error` code and the HTTP status below (see docs/api.md).
"""

from __future__ import annotations

from typing import Any


class SoteriaError(Exception):
    status = 500
    code = "internal_error"

    def __init__(self, detail: str, *, code: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if code:
            self.code = code
        # Extra JSON fields for the API answer (e.g. field, existing, running).
        self.extra = extra


class InvalidInput(SoteriaError):
    status = 400
    code = "invalid_input"

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        if field:
            extra["field"] = field
        super().__init__(detail, **extra)


class NotFound(SoteriaError):
    status = 404
    code = "not_found"


class Conflict(SoteriaError):
    status = 409
    code = "conflict"


class UnsupportedDriver(SoteriaError):
    """The PVC is not one the configured driver can handle."""

    status = 422
    code = "unsupported_driver"


class UpstreamError(SoteriaError):
    """Kubernetes or Longhorn answered, but with a failure."""

    status = 502

    def __init__(self, system: str, detail: str, *, upstream_status: int | None = None, **extra: Any) -> None:
        self.system = system
        self.upstream_status = upstream_status
        super().__init__(detail, code=f"{system}_error", **extra)


class UpstreamUnavailable(UpstreamError):
    """Kubernetes or Longhorn could not be reached."""

    status = 503

    def __init__(self, system: str, detail: str, **extra: Any) -> None:
        super().__init__(system, detail, **extra)
        self.code = f"{system}_unavailable"


class UpstreamTimeout(UpstreamError):
    """Kubernetes or Longhorn did not answer in time."""

    status = 504

    def __init__(self, system: str, detail: str, **extra: Any) -> None:
        super().__init__(system, detail, **extra)
        self.code = f"{system}_timeout"
