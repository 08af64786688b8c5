"""Namespace restores handed to the worker, recorded in Kubernetes so that a batch whose process
is killed is carried on instead of dropped.

Before POST /v1/restores/namespace answers `queued`, it creates the batch's Lease
`soteria-restore-batch-<id>` in SOTERIA_SECRET_NAMESPACE (labelled
soteria.io/purpose=restore-batch), held for the queue for Q_CLUSTER's `retry` (the time after
which the queue hands an unfinished task over again). The Lease is the batch's record too: its
annotation soteria.io/restore-batch holds gzip-compressed JSON with the source and target
namespaces, who asked, and per PVC its target claim and the backup chosen, sealed with
Django's key (`leases.sealed`: a record anyone else wrote is reported, never carried on). A
namespace whose record would not fit one Lease's annotations (about 256 KiB; some thousands of
PVCs) is queued as several batches.

The worker's task takes the Lease over from the queue, renews it every
SOTERIA_RESTORE_HEARTBEAT_SECONDS while it restores, and deletes it when it has gone through
every PVC. A task handed over a second time by the queue finds the Lease held (the batch runs
elsewhere) or gone (the batch is done) and does nothing.

`sweep` (part of the restore sweep, every minute) finds the batches whose Lease expired: their
process died. Once no single restore of the batch still holds its claim's Lease (the restore in
flight at the kill is undone first, by `restore_leases`), it takes the Lease over for the queue
and queues the batch again. Carried on, the batch restores each PVC whose target claim does not
exist, planned again from the backup chosen the first time; a target claim already there from
the same source counts as restored, any other as a conflict.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core import kubernetes, leases
from soteria_site.core.errors import Conflict, SoteriaError

from ..types import RestorePlan
from . import restore_leases

log = logging.getLogger(__name__)
PURPOSE = "soteria.io/purpose"
SELECTOR = f"{PURPOSE}=restore-batch"
LABELS = {PURPOSE: "restore-batch", "app.kubernetes.io/managed-by": "soteria"}
RECORD = "soteria.io/restore-batch"
# A Lease's annotations hold 256 KiB in all; the record stays well under (about 500 PVCs of long
# random names, or some thousands of usual ones).
RECORD_LIMIT = 200_000
FORMAT = 1


@dataclass(frozen=True)
class Entry:
    pvc: str
    target_pvc: str
    backup: str


@dataclass(frozen=True)
class Batch:
    id: str
    namespace: str
    target_namespace: str
    requested_by: str
    entries: tuple[Entry, ...]


def name_of(batch_id: str) -> str:
    return f"soteria-restore-batch-{batch_id}"


def _namespace() -> str:
    return settings.SOTERIA_SECRET_NAMESPACE


def _queued_seconds() -> int:
    """How long the queue may take to start a batch before the sweep queues it again."""
    return int(settings.Q_CLUSTER["retry"])


def _running_seconds() -> int:
    return 4 * settings.SOTERIA_RESTORE_HEARTBEAT_SECONDS


def _expired(lease: kubernetes.Lease, now: datetime) -> bool:
    return lease.renewed is None or lease.renewed + timedelta(seconds=lease.duration_seconds) < now


# --- the record --------------------------------------------------------------------------------
def _encode(batch: Batch) -> str:
    payload = {"format": FORMAT, "namespace": batch.namespace, "target_namespace": batch.target_namespace,
               "requested_by": batch.requested_by,
               "entries": [[e.pvc, e.target_pvc, e.backup] for e in batch.entries]}
    return base64.b64encode(gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)).decode()


def _decode(lease: kubernetes.Lease) -> Batch:
    """The record `record` wrote on the Lease; ValueError for anything else, and for a record
    this Soteria did not seal (it would restore whatever backup it names, anywhere)."""
    if not leases.seal_holds(lease.annotations):
        raise ValueError(f"Lease {_namespace()}/{lease.name} is not sealed with this Soteria's key "
                         "(SOTERIA_SECRET_KEY); left alone")
    try:
        payload = json.loads(gzip.decompress(base64.b64decode(lease.annotations.get(RECORD, ""), validate=True)))
        if payload.get("format") != FORMAT:
            raise ValueError(f"format {payload.get('format')!r}, not {FORMAT}")
        entries = tuple(Entry(*(str(part) for part in entry)) for entry in payload["entries"])
        return Batch(lease.name.removeprefix(name_of("")), str(payload["namespace"]),
                     str(payload["target_namespace"]), str(payload["requested_by"]), entries)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"Lease {_namespace()}/{lease.name} holds no restore batch Soteria wrote ({exc})") from None


def record(namespace: str, target_namespace: str, requested_by: str, plans: list[RestorePlan]
           ) -> list[tuple[str, str, list[RestorePlan]]]:
    """Create the batch's Lease with its record, held for the queue; returns (batch id, the
    holder the queued task holds it as, its plans): one batch, or several when one record would
    not fit a Lease. Raises when a Lease cannot be created (those already made are given back)."""
    batch_id = uuid.uuid4().hex[:12]
    batch = Batch(batch_id, namespace, target_namespace, requested_by,
                  tuple(Entry(p.pvc, p.target_pvc, p.backup.name) for p in plans))
    encoded = _encode(batch)
    if len(encoded) > RECORD_LIMIT and len(plans) > 1:
        half = len(plans) // 2
        first = record(namespace, target_namespace, requested_by, plans[:half])
        try:
            return first + record(namespace, target_namespace, requested_by, plans[half:])
        except Exception:
            for made_id, holder, _ in first:
                discard(made_id, holder)
            raise
    holder = f"queued-{batch_id}"
    if not leases.acquire(name_of(batch_id), namespace=_namespace(), duration_seconds=_queued_seconds(),
                          holder=holder, labels=LABELS, annotations=leases.sealed({RECORD: encoded})):
        raise Conflict(f"Lease {_namespace()}/{name_of(batch_id)} of a new restore batch is held already", code="busy")
    return [(batch_id, holder, plans)]


def discard(batch_id: str, holder: str) -> None:
    """Undo `record` when the batch could not be queued after all."""
    leases.release(name_of(batch_id), namespace=_namespace(), holder=holder)


@contextmanager
def held(batch_id: str, holder: str):
    """Run a batch while holding its Lease as `holder`, renewed; yields the Batch, or None when
    there is nothing to do (another process holds it, or it is done). Done when the body ends
    without an exception: the Lease is deleted."""
    name = name_of(batch_id)
    if not leases.acquire(name, namespace=_namespace(), duration_seconds=_running_seconds(), holder=holder,
                          labels=LABELS):
        log.info("restore batch %s is being carried out by another process", batch_id)
        yield None
        return
    lease = kubernetes.find_lease(_namespace(), name)
    if lease is None or RECORD not in lease.annotations:  # done already: this task was handed over again
        leases.release(name, namespace=_namespace(), holder=holder)
        yield None
        return
    batch = _decode(lease)
    with leases.Heartbeat(holder, [name], namespace=_namespace(), duration_seconds=_running_seconds(),
                          every_seconds=settings.SOTERIA_RESTORE_HEARTBEAT_SECONDS):
        yield batch
    leases.release(name, namespace=_namespace(), holder=holder)


# --- the sweep ---------------------------------------------------------------------------------
def sweep(enqueue, now: datetime | None = None) -> dict:
    """Queue again each batch whose process died; `enqueue(batch, holder)` queues one. One list
    of batches' Leases, and one of single restores' Leases when a batch's has expired."""
    now = now or datetime.now(timezone.utc)
    report: dict[str, list[str]] = {"resumed": [], "waiting": [], "failed": []}
    expired = [lease for lease in kubernetes.list_leases(_namespace(), SELECTOR) if _expired(lease, now)]
    restoring: set[str] = set()
    if expired:
        restoring = {lease.annotations.get(restore_leases.TARGET, "")
                     for lease in kubernetes.list_leases(_namespace(), restore_leases.SELECTOR)
                     if not restore_leases._expired(lease, now)}
    for lease in expired:
        try:
            outcome = _sweep_one(lease, restoring, now, enqueue)
        except (SoteriaError, ValueError) as exc:
            report["failed"].append(f"{lease.name}: {getattr(exc, 'detail', exc)}")
            continue
        if outcome:
            report[outcome].append(lease.name)
    if report["resumed"] or report["failed"]:
        log.warning("restore batch sweep: queued again %s; failed %s", report["resumed"] or "none",
                    report["failed"] or "nothing")
    return {k: v for k, v in report.items() if v}


def _sweep_one(lease: kubernetes.Lease, restoring: set[str], now: datetime, enqueue) -> str:
    batch = _decode(lease)
    if any(f"{batch.target_namespace}/{e.target_pvc}" in restoring for e in batch.entries):
        return "waiting"  # a restore of it still holds its claim's Lease: it is undone first
    holder = f"resumed-{uuid.uuid4().hex[:12]}"
    if not leases.acquire(lease.name, namespace=_namespace(), duration_seconds=_queued_seconds(), holder=holder,
                          now=now):
        return ""  # another replica's sweep took it
    enqueue(batch, holder)
    return "resumed"
