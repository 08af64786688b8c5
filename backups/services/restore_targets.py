"""The name of a restore's new claim: a free one to propose (`<pvc>-restore-<YYYYMMDD>`), within
Kubernetes' limits for a PVC name. Whether a name given is taken, the restore's plan says
(`target_exists`)."""

from __future__ import annotations

from datetime import datetime, timezone

from soteria_site.core import kubernetes
from soteria_site.core.names import DNS_SUBDOMAIN_MAX, fit_name

# How many numbered variants (`-2`, `-3`, ...) are tried before the plain name is proposed anyway
# (the plan then says that it exists).
VARIANTS = 50


def proposed(pvc: str, day: datetime, n: int = 1) -> str:
    """`<pvc>-restore-<YYYYMMDD>` (then `-2`, `-3`, ...), shortened with a hash when too long."""
    suffix = f"-restore-{day:%Y%m%d}" + (f"-{n}" if n > 1 else "")
    return fit_name(pvc, DNS_SUBDOMAIN_MAX, suffix=suffix)


def suggest(pvc: str, target_namespace: str, now: datetime | None = None) -> str:
    """A free name for a restore of `pvc` into `target_namespace` (one list of its claims)."""
    day = now or datetime.now(timezone.utc)
    taken = {p.name for p in kubernetes.list_pvcs(target_namespace)}
    for n in range(1, VARIANTS + 1):
        name = proposed(pvc, day, n)
        if name not in taken:
            return name
    return proposed(pvc, day)
