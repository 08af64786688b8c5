"""Leadership of the policy evaluator through a coordination.k8s.io Lease.

Each evaluation run tries to take or renew the Lease with a compare-and-swap
on its resourceVersion; only the holder evaluates. A holder that stops renewing
loses the Lease once it expires, so a second replica or a rolling update never
fires the same policy twice, and a dead leader is replaced.
"""

from __future__ import annotations

import logging
import socket
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict
from soteria_site.core.timeparse import format_time

log = logging.getLogger(__name__)
LEASE_NAME = "soteria-policy-evaluator"


def identity() -> str:
    """This replica: the pod's name (its hostname), shared by its worker processes."""
    return socket.gethostname()


def lease_seconds() -> int:
    return 2 * settings.SOTERIA_POLICY_EVAL_SECONDS + 30


def _micro(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def acquire(holder: str | None = None, now: datetime | None = None) -> bool:
    """Take or renew the Lease for `holder`. True when this caller leads."""
    holder = holder or identity()
    now = now or datetime.now(timezone.utc)
    namespace = settings.SOTERIA_SECRET_NAMESPACE
    duration = lease_seconds()
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration, "renewTime": _micro(now)}
    lease = kubernetes.find_lease(namespace, LEASE_NAME)
    try:
        if lease is None:
            kubernetes.create_lease(namespace, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": namespace},
                "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0}})
            return True
        expired = lease.renewed is None or lease.renewed + timedelta(seconds=lease.duration_seconds) < now
        if lease.holder != holder and not expired:
            return False
        taking_over = lease.holder != holder
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": LEASE_NAME, "namespace": namespace, "resourceVersion": lease.resource_version},
                "spec": {**spec, "leaseTransitions": lease.transitions + (1 if taking_over else 0)}}
        if taking_over:
            body["spec"]["acquireTime"] = _micro(now)
        kubernetes.replace_lease(namespace, LEASE_NAME, body)
        if taking_over:
            log.info("policy evaluator leadership taken over from %s (last renewed %s)", lease.holder,
                     format_time(lease.renewed))
        return True
    except Conflict:
        return False  # another evaluator won the race
