"""Longhorn's inventory read from its custom resources, through the Kubernetes API.

The manager's `GET /v1/volumes` builds each volume's `backupStatus[]` with one
label-selector scan of every Backup object per volume, so that one call costs
volumes x backups on the manager. The same facts are in three custom resources
(`longhorn.io/v1beta2`, in SOTERIA_LONGHORN_NAMESPACE): `volumes`, `backups`
(labelled `backup-volume=<volume>` and, from 1.8, `backup-target=<target>`) and
`backupvolumes`. Each is read as one paginated list, object by object as it is
parsed (kubernetes.stream_items), keeping from every object only the fields
Soteria uses, and returned as the
dataclasses of `longhorn.py`, so callers cannot tell the two sources apart.
Facts and sources: docs/longhorn.md, "Reading the inventory from CRDs".

The Kubernetes client itself (construction, timeouts, errors, counting) is
kubernetes.py's; this module only knows Longhorn's resources.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

from django.conf import settings

from soteria_site.core import kubernetes
from soteria_site.core.errors import NotFound, UpstreamError
from soteria_site.core.timeparse import parse_time

from .longhorn import BackupStatus, BackupVolume, Volume

GROUP, VERSION = "longhorn.io", "v1beta2"
LABEL_BACKUP_VOLUME = "backup-volume"  # types.LonghornLabelBackupVolume
LABEL_BACKUP_TARGET = "backup-target"  # types.LonghornLabelBackupTarget, 1.8+


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _objects(plural: str) -> Iterator[dict]:
    namespace = settings.SOTERIA_LONGHORN_NAMESPACE
    try:
        yield from kubernetes.custom_object_items(f"longhorn.{plural}.list", GROUP, VERSION, namespace, plural)
    except NotFound:  # a list answers 404 only when the resource itself is not served
        raise UpstreamError(kubernetes.SYSTEM, f"Kubernetes does not serve {plural}.{GROUP}/{VERSION}: "
                                               "is Longhorn (1.6 or newer) installed?", upstream_status=404) from None


def _conditions(items) -> dict[str, dict]:
    """The CR's condition list as the REST API's map keyed by type."""
    if isinstance(items, dict):
        return items
    return {c["type"]: {k: c.get(k, "") for k in ("type", "status", "reason", "message")}
            for c in items or () if isinstance(c, dict) and c.get("type")}


def _ready(spec: dict, status: dict, conditions: dict[str, dict]) -> bool:
    """The manager's `ready` (api/model.go), without the replica check it can make and a CR cannot."""
    state = status.get("state", "")
    if status.get("robustness") == "faulted" or status.get("restoreRequired"):
        return False
    if state == "detached":
        return (conditions.get("Scheduled") or {}).get("status") == "True"
    return bool(spec.get("nodeID"))


def _volume(obj: dict) -> Volume:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    kube = status.get("kubernetesStatus") or {}
    conditions = _conditions(status.get("conditions"))
    return Volume(
        name=sys.intern(meta.get("name", "")),
        size=str(spec.get("size", "")),
        state=sys.intern(status.get("state", "")),
        robustness=sys.intern(status.get("robustness", "")),
        ready=_ready(spec, status, conditions),
        created=parse_time(meta.get("creationTimestamp")),
        pv_name=kube.get("pvName", ""),
        pvc_name=kube.get("pvcName", ""),
        pvc_namespace=sys.intern(kube.get("namespace", "")),
        last_backup=status.get("lastBackup", ""),
        last_backup_at=parse_time(status.get("lastBackupAt")),
        backups=(),
        restore_required=bool(status.get("restoreRequired")),
        restore_initiated=bool(status.get("restoreInitiated")),
        # Per-replica restore progress lives in the Engine CR, not here; get_volume (REST) has it.
        conditions=conditions,
        number_of_replicas=_int(spec.get("numberOfReplicas")) or 3,
        access_mode=sys.intern(spec.get("accessMode") or "rwo"),
        stale_replica_timeout=_int(spec.get("staleReplicaTimeout")) or 30,
        data_engine=sys.intern(spec.get("dataEngine") or "v1"),
        from_backup=spec.get("fromBackup") or "",
        backup_target=sys.intern(spec.get("backupTargetName") or ""),
    )


def _backup_status(obj: dict) -> tuple[str, str, BackupStatus]:
    """(volume, backup target, the backup as a volume's backupStatus[] entry) of a Backup CR."""
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    labels = meta.get("labels") or {}
    volume = labels.get(LABEL_BACKUP_VOLUME) or status.get("volumeName") or ""
    target = labels.get(LABEL_BACKUP_TARGET) or status.get("backupTargetName") or ""
    entry = BackupStatus(
        name=meta.get("name", ""),
        # status.snapshotName is filled once the backup controller picks the backup up;
        # spec.snapshotName is what was asked for, and names a new backup's snapshot sooner.
        snapshot=status.get("snapshotName") or spec.get("snapshotName") or "",
        state=sys.intern(status.get("state") or ""),
        progress=_int(status.get("progress")),
        url=status.get("url") or "",
        error=status.get("error") or "",
        size=sys.intern(str(status.get("size") or "")),
    )
    return volume, target, entry


def list_volumes(completed_time: Callable[[str], datetime | None] | None = None) -> list[Volume]:
    """Every Longhorn volume with its backups, as `longhorn.list_volumes()` returns them: two
    Kubernetes lists (volumes, then backups) whatever the number of volumes and backups.

    A volume's backups are the Backup CRs labelled with its name (else whose status names
    it); from 1.8, only those on the volume's own backup target, as the manager shows them.
    Backups of volumes that do not exist are dropped as they are read.

    With `completed_time` (a snapshot name -> when it was taken, or None) Completed backups are
    folded as they are read into each volume's `completed_backups` and `last_completed_at`
    instead of being kept: the inventory needs no more of them, and at 50 backups a volume
    they are most of what the list holds."""
    volumes: dict[str, Volume] = {}
    for obj in _objects("volumes"):
        volume = _volume(obj)
        volumes[volume.name] = volume
    backups: dict[str, list[BackupStatus]] = {}
    completed: dict[str, list] = {}  # volume -> [count, newest snapshot time]
    for obj in _objects("backups"):
        name, target, entry = _backup_status(obj)
        volume = volumes.get(name)
        if volume is None:
            continue
        if target and volume.backup_target and target != volume.backup_target:
            continue
        if completed_time is not None and entry.state == "Completed":
            seen = completed.setdefault(name, [0, None])
            seen[0] += 1
            taken = completed_time(entry.snapshot)
            if taken is not None and (seen[1] is None or taken > seen[1]):
                seen[1] = taken
            continue
        backups.setdefault(name, []).append(entry)
    listed = []
    for name in sorted(volumes):
        volume = volumes.pop(name)
        own = backups.pop(name, None)
        if own:
            own.sort(key=lambda b: b.name)  # the manager sorts backupStatus[] by backup name
            volume = replace(volume, backups=tuple(own))
        if completed_time is not None:
            count, newest = completed.pop(name, (0, None))
            volume = replace(volume, completed_backups=count, last_completed_at=newest)
        listed.append(volume)
    return listed


def _backup_volume(obj: dict) -> BackupVolume:
    meta, spec, status = obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}
    name = meta.get("name", "")
    labels = meta.get("labels") or {}
    return BackupVolume(
        name=name,
        # spec.volumeName exists from 1.8; before, the backup volume is named after the volume.
        volume_name=spec.get("volumeName") or labels.get(LABEL_BACKUP_VOLUME) or name,
        size=str(status.get("size", "")),
        last_backup_name=status.get("lastBackupName", ""),
        last_backup_at=parse_time(status.get("lastBackupAt")),
        created=parse_time(status.get("createdAt")),
        storage_class=status.get("storageClassName", ""),
        backup_target=spec.get("backupTargetName") or labels.get(LABEL_BACKUP_TARGET) or "",
    )


def list_backup_volumes() -> list[BackupVolume]:
    """Every backup volume, as `longhorn.list_backup_volumes()` returns them: one Kubernetes list."""
    return sorted((_backup_volume(obj) for obj in _objects("backupvolumes")), key=lambda bv: bv.name)
