"""One replica builds the cached inventory per refresh interval; the others copy its rows.

On its refresh tick, a worker that holds, or can take, Lease `soteria-inventory-refresh` in
Soteria's namespace builds the inventory (inventory_cache.refresh), stores it as it always
did, and publishes the stored rows; a worker that finds the Lease held by another live
replica builds nothing: it reads the published rows and stores them when they are newer
than its own, so its /metrics and console stay fresh for a few ConfigMap reads instead of
every upstream list. The Lease is held by the pod (leases.identity), for about one interval.

The publication, in Soteria's namespace (labels app.kubernetes.io/managed-by=soteria,
soteria.io/record=inventory):

  soteria-inventory-<k>   binaryData part.bin: the k-th slice of the gzip-compressed JSON
                          {"generated_at", "duration_seconds", "publisher", "rows"} (rows exactly
                          as inventory_cache stores them), annotation soteria.io/generation
  soteria-inventory       the index: data generation, parts, generated_at, publisher

The parts are written first under a new generation id, then the index; a reader checks that
every part it reads carries the index's generation, so it never joins parts of two
publications (one that raced a writer reads again, once). Parts left over by a larger
publication are never read. A failure never leaves a replica without rows: a builder whose
publication fails keeps its own; a reader that cannot read keeps its previous rows; and one
whose leader has published nothing for STALE_INTERVALS intervals builds itself.
"""

from __future__ import annotations

import base64
import gzip
import json
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core import kubernetes, leases
from soteria_site.core.errors import SoteriaError
from soteria_site.core.timeparse import format_time, parse_time

from ..metrics import INVENTORY_SHARING
from ..models import CachedInventory
from . import inventory_cache

log = logging.getLogger(__name__)
LEASE_NAME = "soteria-inventory-refresh"
INDEX = "soteria-inventory"
LABELS = {"app.kubernetes.io/managed-by": "soteria", "soteria.io/record": "inventory"}
GENERATION = "soteria.io/generation"
PART_KEY = "part.bin"
PART_BYTES = 512 * 1024  # compressed bytes a part; base64 makes it about 683 KiB, under 1 MiB
MAX_BYTES = 16 * PART_BYTES  # 8 MiB compressed; 10,000 PVCs' rows are about 375 KB (some 200,000 PVCs fit)
STALE_INTERVALS = 3


class Unreadable(Exception):
    """The publication cannot be read whole (a part missing, of another generation, or corrupt)."""


class _Raced(Exception):
    """A part is of another generation than the index read: a writer is publishing."""


@dataclass(frozen=True)
class Published:
    generation: str
    generated_at: datetime
    duration_seconds: float
    publisher: str
    rows: list[dict]


@dataclass(frozen=True)
class Refresh:
    """What one refresh tick did: `source` is built, copied, current, behind or unreadable."""

    cached: CachedInventory | None
    source: str


def lease_seconds() -> int:
    """About one interval: the holder renews it at every tick, with slack for a late tick (the
    scheduler looks every 30 s) and a slow build."""
    interval = settings.SOTERIA_METRICS_REFRESH_SECONDS
    return interval + max(60, interval // 2)


def _namespace() -> str:
    return settings.SOTERIA_SECRET_NAMESPACE


def part_name(k: int) -> str:
    return f"{INDEX}-{k}"


def refresh(build: Callable[[], CachedInventory | None], now: datetime | None = None,
            holder: str | None = None) -> Refresh:
    """The refresh tick: build and publish when this replica holds (or takes) the Lease, else
    copy the published rows; see the module's docstring."""
    now = now or datetime.now(timezone.utc)
    holder = holder or leases.identity()
    try:
        leader = leases.acquire(LEASE_NAME, namespace=_namespace(), duration_seconds=lease_seconds(),
                                holder=holder, now=now, labels=LABELS)
    except SoteriaError as exc:  # the Lease cannot be read: build, as a single replica would
        log.warning("inventory refresh Lease unavailable, building: %s", exc.detail)
        leader = True
    if leader:
        cached = build()
        INVENTORY_SHARING.labels("built").inc()
        if cached is not None:
            publish(cached, holder)
        return Refresh(cached, "built")
    return _follow(build, now)


def _follow(build: Callable[[], CachedInventory | None], now: datetime) -> Refresh:
    own = inventory_cache.stored()
    stale_before = now - timedelta(seconds=STALE_INTERVALS * settings.SOTERIA_METRICS_REFRESH_SECONDS)
    try:
        published = read(newer_than=own.generated_at if own is not None else None)
    except (SoteriaError, Unreadable) as exc:
        detail = exc.detail if isinstance(exc, SoteriaError) else str(exc)
        log.warning("published inventory unreadable, keeping this replica's rows: %s", detail)
        published = None
        if own is not None and own.generated_at >= stale_before:
            INVENTORY_SHARING.labels("unreadable").inc()
            return Refresh(own, "unreadable")
    if published is not None:
        cached = inventory_cache.store(published.generated_at, published.rows, published.duration_seconds)
        INVENTORY_SHARING.labels("copied").inc()
        return Refresh(cached, "copied")
    if own is not None and own.generated_at >= stale_before:
        INVENTORY_SHARING.labels("current").inc()
        return Refresh(own, "current")
    # Nothing newer, and what this replica has is STALE_INTERVALS old (or absent): the Lease's
    # holder renews without publishing (its builds fail, or it is stuck). Build here.
    log.warning("the inventory refresh Lease's holder published nothing since %s: building here",
                format_time(own.generated_at) if own is not None else "ever")
    INVENTORY_SHARING.labels("behind").inc()
    return Refresh(build(), "behind")


def encode(cached: CachedInventory, publisher: str) -> bytes:
    payload = {"generated_at": format_time(cached.generated_at), "duration_seconds": cached.duration_seconds,
               "publisher": publisher, "rows": cached.rows}
    return gzip.compress(json.dumps(payload, separators=(",", ":")).encode(), mtime=0)


def publish(cached: CachedInventory, publisher: str) -> bool:
    """Write the stored rows for the other replicas: parts first, then the index. False (logged
    and counted; the rows stay stored here) when too large or a write fails."""
    blob = encode(cached, publisher)
    if len(blob) > MAX_BYTES:
        log.error("inventory of %d rows is %d bytes compressed, above %d: not published (other replicas "
                  "build their own once it is %d intervals old)", len(cached.rows), len(blob), MAX_BYTES,
                  STALE_INTERVALS)
        INVENTORY_SHARING.labels("too_large").inc()
        return False
    generation = uuid.uuid4().hex
    parts = [blob[i:i + PART_BYTES] for i in range(0, len(blob), PART_BYTES)] or [b""]
    try:
        for k, part in enumerate(parts):
            _write(part_name(k), {GENERATION: generation},
                   binary_data={PART_KEY: base64.b64encode(part).decode()})
        _write(INDEX, {}, data={"generation": generation, "parts": str(len(parts)),
                                "generated_at": format_time(cached.generated_at), "publisher": publisher})
    except SoteriaError as exc:
        log.error("inventory not published (this replica keeps its rows): %s", exc.detail)
        INVENTORY_SHARING.labels("publish_failed").inc()
        return False
    INVENTORY_SHARING.labels("published").inc()
    return True


def _write(name: str, annotations: dict[str, str], data: dict | None = None, binary_data: dict | None = None) -> None:
    current = kubernetes.find_config_map(_namespace(), name)
    metadata = {"name": name, "namespace": _namespace(), "labels": LABELS, "annotations": annotations}
    body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata}
    if data is not None:
        body["data"] = data
    if binary_data is not None:
        body["binaryData"] = binary_data
    if current is None:
        kubernetes.create_config_map(_namespace(), body)
    else:
        metadata["resourceVersion"] = current.resource_version
        kubernetes.replace_config_map(_namespace(), name, body)


def read(newer_than: datetime | None = None) -> Published | None:
    """The published rows; None when nothing is published or it is not newer than `newer_than`
    (then only the index is read). Raises Unreadable when a part is missing or corrupt, or
    still of another generation after a second read (a writer raced this one)."""
    for attempt in range(2):
        index = kubernetes.find_config_map(_namespace(), INDEX)
        if index is None:
            return None
        try:
            generation, count = index.data["generation"], int(index.data["parts"])
            generated_at = parse_time(index.data["generated_at"])
        except (KeyError, ValueError, TypeError) as exc:
            raise Unreadable(f"ConfigMap {INDEX} is not an inventory index: {exc}") from None
        if newer_than is not None and generated_at is not None and generated_at <= newer_than:
            return None
        try:
            return _read_parts(generation, count)
        except _Raced:
            if attempt:
                raise Unreadable("the published inventory changed twice while it was read") from None
    return None


def _read_parts(generation: str, count: int) -> Published:
    blob = b""
    for k in range(count):
        part = kubernetes.find_config_map(_namespace(), part_name(k))
        if part is None:
            raise Unreadable(f"ConfigMap {part_name(k)} is missing")
        if part.annotations.get(GENERATION) != generation:
            raise _Raced(part_name(k))  # the writer is ahead: read the index again
        try:
            blob += base64.b64decode(part.binary_data.get(PART_KEY, ""), validate=True)
        except ValueError as exc:
            raise Unreadable(f"ConfigMap {part_name(k)} is not base64: {exc}") from None
    try:
        payload = json.loads(gzip.decompress(blob))
        rows = payload["rows"]
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ValueError("rows are not a list of objects")
        generated_at = parse_time(payload["generated_at"])
        if generated_at is None:
            raise ValueError("no generated_at")
        return Published(generation, generated_at, float(payload.get("duration_seconds") or 0),
                         str(payload.get("publisher") or ""), rows)
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise Unreadable(f"the published inventory is corrupt: {exc}") from None
