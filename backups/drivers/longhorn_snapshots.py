"""Soteria's own Longhorn snapshots (`soteria-backup-*`) and their removal.

A backup needs its snapshot only until the backup is over: once it is Completed the
data is in the backup store, and a failed backup's snapshot serves nothing. Left alone
they pile up until the engine refuses new snapshots (`snapshot-max-count`, 250 by
default). Soteria deletes only snapshots it named itself:

- before each backup, its earlier snapshots of that volume whose backup is over (one
  `snapshotCRList` call);
- on a schedule, the snapshots it remembers taking (`OwnSnapshot` rows), checked against
  one volume list;
- a snapshot without a backup only once it is older than the snapshot timeout (a backup
  request may be between `snapshotCRCreate` and `snapshotBackup`).

When Longhorn 1.9's `auto-cleanup-snapshot-after-on-demand-backup-completed` is on,
Longhorn deletes the snapshot of a Completed backup itself and Soteria leaves it be.
Facts: docs/longhorn.md.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta, timezone

from django.conf import settings

from soteria_site.core.errors import SoteriaError
from soteria_site.core.names import fit_name

from ..clients import longhorn
from ..clients.longhorn import BackupStatus, Volume
from . import longhorn_features

log = logging.getLogger(__name__)
SNAPSHOT_PREFIX = "soteria-backup-"
# Longhorn takes any Kubernetes object name (253) for a Snapshot CR, and the v1 engine keeps
# each snapshot in files named after it; Soteria stays within 63 so the name also fits a label
# value and the tighter names Longhorn may copy it into (assumption: docs/longhorn.md, "Names").
SNAPSHOT_NAME_MAX = 63
_SNAPSHOT_TIME = re.compile(r"-(\d{8}-\d{6})$")


def snapshot_name(namespace: str, pvc: str, when: datetime) -> str:
    """`soteria-backup-<ns>-<pvc>-<UTC yyyymmdd-HHMMSS>`, shortened (`fit_name`) past 63
    characters: the prefix and the time stay, so `snapshot_time` and pruning still know it."""
    stamp = f"-{when.astimezone(timezone.utc):%Y%m%d-%H%M%S}"
    return fit_name(f"{SNAPSHOT_PREFIX}{namespace}-{pvc}", SNAPSHOT_NAME_MAX, suffix=stamp)


def snapshot_time(name: str) -> datetime | None:
    """When Soteria took a snapshot, read from its name; None for other snapshots."""
    if not name.startswith(SNAPSHOT_PREFIX):
        return None
    match = _SNAPSHOT_TIME.search(name)
    if not match:
        return None
    try:
        return datetime.strptime(match.group(1), "%Y%m%d-%H%M%S").replace(tzinfo=timezone.utc)
    except ValueError:
        return None


RUNNING = frozenset({"", "Pending", "InProgress"})
# How many remembered volumes are looked up one by one before one volume list is cheaper.
SINGLE_LOOKUPS = 20


def is_own(name: str) -> bool:
    return name.startswith(SNAPSHOT_PREFIX)


def remember(volume: str, name: str, now: datetime) -> None:
    from ..models import OwnSnapshot

    OwnSnapshot.objects.get_or_create(volume=volume, name=name, defaults={"created_at": now})


def forget(volume: str, name: str) -> None:
    from ..models import OwnSnapshot

    OwnSnapshot.objects.filter(volume=volume, name=name).delete()


def discard(volume: str, name: str) -> str:
    """Delete one of Soteria's snapshots; "" when done, else why not (logged)."""
    if not is_own(name):
        raise ValueError(f"{name} is not one of Soteria's snapshots")
    try:
        longhorn.delete_snapshot(volume, name)
    except SoteriaError as exc:
        log.warning("could not delete snapshot %s of volume %s: %s", name, volume, exc.detail)
        return exc.detail
    forget(volume, name)
    return ""


def verdict(name: str, backups: list[BackupStatus], taken: datetime | None, now: datetime,
            auto_clean: bool | None) -> str:
    """What to do with one of Soteria's snapshots: "delete", "forget" (Longhorn deletes it)
    or "keep". `auto_clean` None means "not asked yet" (asked only when it matters)."""
    own = [b for b in backups if b.snapshot == name]
    if any(b.state in RUNNING for b in own):
        return "keep"
    if not own:
        too_old = taken is not None and now - taken >= timedelta(
            seconds=settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS)
        return "delete" if too_old else "keep"
    if all(b.state == "Completed" for b in own):
        if auto_clean is None:
            auto_clean = _auto_clean()
        return "forget" if auto_clean else "delete"
    return "delete"  # failed (Error, Unknown) or being deleted


def _auto_clean() -> bool:
    try:
        return longhorn_features.auto_cleans_snapshots()
    except SoteriaError as exc:
        log.warning("could not read Longhorn's snapshot auto-cleanup setting: %s", exc.detail)
        return True  # when in doubt, leave the snapshot (deleting it again is harmless later)


def _taken(name: str, created: datetime | None) -> datetime | None:
    return snapshot_time(name) or created


def prune_volume(volume: Volume, now: datetime) -> list[str]:
    """Before a backup: delete Soteria's snapshots of `volume` whose backup is over. Best
    effort: a failure is logged and the backup goes on. Returns the names deleted."""
    try:
        snapshots = longhorn.list_snapshots(volume.name)
    except SoteriaError as exc:
        log.warning("could not list snapshots of volume %s: %s", volume.name, exc.detail)
        return []
    deleted = []
    for snap in snapshots:
        if not is_own(snap.name):
            continue
        action = verdict(snap.name, list(volume.backups), _taken(snap.name, snap.created), now, None)
        if action == "delete" and not discard(volume.name, snap.name):
            deleted.append(snap.name)
        elif action == "forget":
            forget(volume.name, snap.name)
    return deleted


def prune_remembered(now: datetime) -> dict[str, int]:
    """The schedule's pass: Soteria's remembered snapshots, against the volumes' backups."""
    from ..models import OwnSnapshot

    rows = list(OwnSnapshot.objects.all())
    counts = {"checked": len(rows), "deleted": 0, "forgotten": 0, "kept": 0, "failed": 0}
    if not rows:
        return counts
    names = {row.volume for row in rows}
    if len(names) <= SINGLE_LOOKUPS:
        volumes = {name: longhorn.get_volume(name) for name in names}
    else:
        volumes = {v.name: v for v in longhorn.list_volumes()}
    for row in rows:
        volume = volumes.get(row.volume)
        if volume is None:  # the volume is gone, and its snapshots with it
            forget(row.volume, row.name)
            counts["forgotten"] += 1
            continue
        action = verdict(row.name, list(volume.backups), _taken(row.name, row.created_at), now, None)
        if action == "forget":
            forget(row.volume, row.name)
            counts["forgotten"] += 1
        elif action == "delete":
            counts["failed" if discard(row.volume, row.name) else "deleted"] += 1
        else:
            counts["kept"] += 1
    return counts
