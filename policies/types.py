"""The policy type and its validation."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime

from soteria_site.core.errors import InvalidInput
from soteria_site.core.names import dns_label_error, dns_subdomain_error, tags_to_labels
from soteria_site.core.timeparse import format_time, parse_time

MAX_INTERVAL_HOURS = 24 * 366
MAX_RETAIN = 1000


def policy_id(namespace: str, pvc: str) -> str:
    """Stable id: `<namespace>.<pvc>`, or `<namespace>` for a namespace-wide policy. A namespace
    is a DNS label, which has no dots, so the first dot ends it and everything after it is the
    PVC name, dots and all (PVC names are DNS subdomains): unambiguous."""
    return f"{namespace}.{pvc}" if pvc else namespace


def policy_namespace(policy_id: str) -> str:
    """The namespace a policy id names (the part before the first dot)."""
    return policy_id.partition(".")[0]


@dataclass(frozen=True)
class Policy:
    namespace: str
    pvc: str  # "" = every PVC of the namespace
    interval_hours: float
    enabled: bool = True
    retain: int | None = None
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None
    updated_by: str = ""
    last_run_at: datetime | None = None
    last_result: str = ""
    last_detail: str = ""
    verify_every_hours: float | None = None  # restore drills: None = off

    @property
    def id(self) -> str:
        return policy_id(self.namespace, self.pvc)

    @property
    def interval_seconds(self) -> float:
        return self.interval_hours * 3600

    def to_json(self) -> dict:
        data = {"id": self.id, **asdict(self)}
        data["tags"] = list(self.tags)
        for key in ("created_at", "updated_at", "last_run_at"):
            data[key] = format_time(getattr(self, key))
        return data

    @classmethod
    def from_json(cls, data: dict) -> Policy:
        return cls(
            namespace=data["namespace"], pvc=data.get("pvc") or "", interval_hours=float(data["interval_hours"]),
            enabled=bool(data.get("enabled", True)), retain=data.get("retain"),
            tags=tuple(data.get("tags") or ()), created_at=parse_time(data.get("created_at")),
            updated_at=parse_time(data.get("updated_at")), updated_by=data.get("updated_by") or "",
            last_run_at=parse_time(data.get("last_run_at")), last_result=data.get("last_result") or "",
            last_detail=data.get("last_detail") or "",
            verify_every_hours=float(v) if (v := data.get("verify_every_hours")) is not None else None)


@dataclass(frozen=True)
class PolicyView:
    """A policy as the API and the console show it: with the earliest time one of its PVCs
    falls due for a backup, and for a restore drill (None when disabled, drills are off, or
    when that is unknown now)."""

    policy: Policy
    next_due_at: datetime | None = None
    next_drill_due_at: datetime | None = None


def _hours_error(value) -> bool:
    return isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(
        value) or not 0 < value <= MAX_INTERVAL_HOURS


def validate(namespace, pvc, interval_hours, enabled, retain, tags, verify_every_hours=None) -> None:
    """Raise InvalidInput naming the first bad field."""
    problem = dns_label_error(namespace)
    if problem:
        raise InvalidInput(f"namespace: {problem}", field="namespace")
    if pvc:
        problem = dns_subdomain_error(pvc)
        if problem:
            raise InvalidInput(f"pvc: {problem}", field="pvc")
    if _hours_error(interval_hours):
        raise InvalidInput(f"interval_hours: must be a number greater than 0 and at most {MAX_INTERVAL_HOURS}",
                           field="interval_hours")
    if not isinstance(enabled, bool):
        raise InvalidInput("enabled: must be true or false", field="enabled")
    if retain is not None and (isinstance(retain, bool) or not isinstance(retain, int)
                               or not 1 <= retain <= MAX_RETAIN):
        raise InvalidInput(f"retain: must be a whole number from 1 to {MAX_RETAIN}, or null", field="retain")
    if verify_every_hours is not None and _hours_error(verify_every_hours):
        raise InvalidInput(f"verify_every_hours: must be a number greater than 0 and at most {MAX_INTERVAL_HOURS}, "
                           "or null (no restore drills)", field="verify_every_hours")
    tags_to_labels(list(tags))  # refuses Soteria's own keys (policy, soteria.io/...) too
