"""Leadership through a coordination.k8s.io Lease.

`acquire` takes, renews or takes over an expired Lease with a compare-and-swap on its
resourceVersion, so of any number of callers racing for one Lease exactly one holds it.
A holder that stops renewing loses the Lease once `duration_seconds` pass after its last
renewal, and the next caller takes it over.
"""

from __future__ import annotations

import hmac
import json
import logging
import socket
import threading
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.core import signing

from . import kubernetes
from .errors import Conflict
from .timeparse import format_time

log = logging.getLogger(__name__)


def identity() -> str:
    """This replica: the pod's name (its hostname), shared by the pod's processes."""
    return socket.gethostname()


def _micro(when: datetime) -> str:
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def acquire(name: str, *, namespace: str, duration_seconds: int, holder: str | None = None,
            now: datetime | None = None, labels: dict[str, str] | None = None,
            annotations: dict[str, str] | None = None) -> bool:
    """Take or renew Lease `namespace/name` for `holder` (default: `identity()`). True when
    `holder` holds it now; False when another holder's Lease has not expired or another
    caller won the race. `labels` and `annotations` are set when the Lease is taken (a
    renewal keeps the Lease's own)."""
    holder = holder or identity()
    now = now or datetime.now(timezone.utc)
    spec = {"holderIdentity": holder, "leaseDurationSeconds": duration_seconds, "renewTime": _micro(now)}
    lease = kubernetes.find_lease(namespace, name)
    try:
        if lease is None:
            kubernetes.create_lease(namespace, {
                "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {},
                             "annotations": annotations or {}},
                "spec": {**spec, "acquireTime": _micro(now), "leaseTransitions": 0}})
            return True
        expired = lease.renewed is None or lease.renewed + timedelta(seconds=lease.duration_seconds) < now
        if lease.holder != holder and not expired:
            return False
        taking_over = lease.holder != holder
        metadata = {"name": name, "namespace": namespace, "resourceVersion": lease.resource_version,
                    "labels": labels if taking_over and labels is not None else lease.labels,
                    "annotations": annotations if taking_over and annotations is not None else lease.annotations}
        body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata,
                "spec": {**spec, "leaseTransitions": lease.transitions + (1 if taking_over else 0)}}
        if taking_over:
            body["spec"]["acquireTime"] = _micro(now)
        kubernetes.replace_lease(namespace, name, body)
        if taking_over:
            log.info("Lease %s/%s taken over by %s from %s (last renewed %s)", namespace, name, holder,
                     lease.holder, format_time(lease.renewed))
        return True
    except Conflict:
        return False  # another caller won the race


# --- sealed annotations ------------------------------------------------------------------------
# A Lease whose annotations tell a sweeper what to delete or what to run again (a restore in
# flight, a namespace restore's batch) is sealed with Django's signing key (SOTERIA_SECRET_KEY):
# anyone who may write Leases in Soteria's namespace could otherwise name any volume for it to
# delete, or any backup for it to restore anywhere. Replicas share the seal only when they
# share the key.
SEAL = "soteria.io/seal"
_SALT = "soteria.lease-annotations"


def _canonical(annotations: dict[str, str]) -> str:
    return json.dumps(sorted((k, v) for k, v in annotations.items() if k != SEAL), separators=(",", ":"))


def sealed(annotations: dict[str, str]) -> dict[str, str]:
    """`annotations` with their seal added."""
    return {**annotations, SEAL: signing.Signer(salt=_SALT).signature(_canonical(annotations))}


def seal_holds(annotations: dict[str, str]) -> bool:
    """Whether this Soteria sealed these annotations (with its key, or one of SECRET_KEY_FALLBACKS)."""
    seal = annotations.get(SEAL, "")
    signer = signing.Signer(salt=_SALT)
    canonical = _canonical(annotations)
    return bool(seal) and any(hmac.compare_digest(seal, signer.signature(canonical, key))
                              for key in [settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS])


def held_by(name: str, *, namespace: str, holder: str, now: datetime | None = None) -> bool:
    """Whether `holder` holds Lease `namespace/name` now (it exists, names it, and has not expired)."""
    lease = kubernetes.find_lease(namespace, name)
    now = now or datetime.now(timezone.utc)
    return (lease is not None and lease.holder == holder and lease.renewed is not None
            and lease.renewed + timedelta(seconds=lease.duration_seconds) >= now)


def release(name: str, *, namespace: str, holder: str) -> None:
    """Give up Lease `namespace/name` if `holder` holds it (deleted, so the next caller takes it
    at once); a Lease another holder has taken meanwhile is left alone."""
    lease = kubernetes.find_lease(namespace, name)
    if lease is None or lease.holder != holder:
        return
    try:
        kubernetes.delete_lease(namespace, name, lease.resource_version)
    except Conflict:
        log.info("Lease %s/%s changed before %s released it", namespace, name, holder)


class Heartbeat:
    """Renews Leases `names` for `holder` every `every_seconds` in a thread, while a piece of
    work runs (`with Heartbeat(...) as beat:`); `lost` says why once one of them was taken by
    another holder (a sweeper may then have taken the work for dead). A process that dies stops
    renewing, and its Leases expire `duration_seconds` after the last renewal."""

    def __init__(self, holder: str, names: list[str], *, namespace: str, duration_seconds: int,
                 every_seconds: float):
        self.holder, self.names, self.namespace = holder, names, namespace
        self.duration_seconds, self.every_seconds = duration_seconds, every_seconds
        self.lost = ""
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{holder}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)

    def renew(self) -> None:
        from .errors import SoteriaError

        for name in self.names:
            try:
                held = acquire(name, namespace=self.namespace, duration_seconds=self.duration_seconds,
                               holder=self.holder)
            except SoteriaError as exc:
                log.warning("%s could not renew Lease %s: %s", self.holder, name, exc.detail)
                continue
            if not held:
                self.lost = f"{self.holder} lost its Lease {name} (another Soteria took it over)"

    def _run(self) -> None:
        while not self._stop.wait(self.every_seconds):
            self.renew()
