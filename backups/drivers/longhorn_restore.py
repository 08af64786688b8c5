"""Longhorn restores: choose a backup, plan, then create volume, PV and PVC, undoing on failure.

The new volume is created `fromBackup` under a generated name (pvc-<uuid4>,
like a dynamically provisioned one: 40 characters, Longhorn's limit for a volume name, and
independent of the PVC's name, however long); the PV is created already bound to the
target claim (`claimRef`) and the PVC names the PV (`volumeName`), so no other
pending claim can take the PV in between (Longhorn's own pvCreate leaves it
unbound). If anything fails after the volume exists, what was created is
deleted in reverse order and the original error is reported with the cleanup's
outcome.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from dataclasses import replace
from decimal import Decimal, InvalidOperation
from urllib.parse import parse_qs, urlsplit

from django.conf import settings

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, InvalidInput, NotFound, SoteriaError, UpstreamTimeout
from soteria_site.core.names import label_value

from ..clients import longhorn
from ..types import RESTORED_FROM, BackupRecord, Claim, PlannedCall, RestorePlan
from .base import restore_failed, unanswered

log = logging.getLogger(__name__)
ACCEPT_TIMEOUT = 60.0
_QUANTITY = re.compile(r"^\s*([0-9.]+)\s*([KMGTPE]i?|k|m)?\s*$")
_FACTORS = {None: 1, "k": 10**3, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
            "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
RESTORED_BACKUP = "soteria.io/backup"


def to_record(backup: longhorn.Backup, volume: str = "") -> BackupRecord:
    """A Longhorn backup as Soteria's record (`volume` when Longhorn leaves it blank)."""
    return BackupRecord(name=backup.name, snapshot=backup.snapshot_name, url=backup.url, state=backup.state,
                        progress=backup.progress, created=backup.created or backup.snapshot_created,
                        size=backup.size, labels=backup.labels, backup_mode=backup.backup_mode,
                        error=backup.error, volume=backup.volume_name or volume, volume_size=backup.volume_size)


def quantity_bytes(text: str) -> int | None:
    """Bytes of a Kubernetes quantity (`10Gi`, `1073741824`, `500M`); None if unreadable."""
    match = _QUANTITY.match(text or "")
    if not match or match.group(2) == "m":
        return None
    try:
        return int(Decimal(match.group(1)) * _FACTORS[match.group(2)])
    except (InvalidOperation, ValueError):
        return None


def quantity(size: int) -> str:
    """Bytes as the shortest exact binary quantity (`2Gi`, `512Mi`, else plain bytes)."""
    for suffix, factor in (("Ti", 2**40), ("Gi", 2**30), ("Mi", 2**20)):
        if size and size % factor == 0:
            return f"{size // factor}{suffix}"
    return str(size)


def url_volume(url: str) -> str:
    """The `volume=` of a Longhorn backup URL (`<target>?backup=<name>&volume=<volume>`)."""
    return (parse_qs(urlsplit(url).query).get("volume") or [""])[0]


def choose_backup(records: list[BackupRecord], snapshot: str, claim: Claim) -> BackupRecord:
    """`latest`/blank: the newest Completed backup; else the backup or snapshot of that name."""
    namespace, pvc = claim.key
    if snapshot in ("", "latest"):
        completed = [r for r in records if r.completed]
        if not completed:
            raise NotFound(f"PVC {namespace}/{pvc} has no completed backup to restore", code="no_backup")
        return completed[0]
    matches = [r for r in records if snapshot in (r.name, r.snapshot)]
    if not matches:
        raise NotFound(f"PVC {namespace}/{pvc} has no backup or snapshot named {snapshot!r}", field="snapshot")
    chosen = matches[0]
    if not chosen.completed:
        raise Conflict(f"backup {chosen.name} of PVC {namespace}/{pvc} is {chosen.state or 'not finished'}, "
                       "not Completed", code="backup_not_completed", field="snapshot")
    return chosen


def refuse_foreign_url(url: str, own_volume: str, claim: Claim) -> None:
    """A restore uses only backups of its source PVC's own volume. Judged from the URL alone
    (`volume=`), so nothing is looked up and nothing is said about the other volume's backups."""
    volume = url_volume(url)
    if volume and volume != own_volume:
        namespace, pvc = claim.key
        raise InvalidInput(f"backup_url belongs to another volume: a restore of PVC {namespace}/{pvc} may only "
                           f"use backups of its own volume {own_volume} (GET /v1/backups?namespace={namespace}"
                           f"&pvc={pvc} lists them)", field="backup_url")


def find_by_url(url: str, own_volume: str, own_records: list[BackupRecord]) -> BackupRecord:
    """The backup a URL names, among the backups of the claim's own volume only (another
    volume's URL is refused before they are listed: `refuse_foreign_url`)."""
    for record in own_records:
        if record.url == url:
            if not record.completed:
                raise Conflict(f"backup {record.name} is {record.state or 'not finished'}, not Completed",
                               code="backup_not_completed", field="backup_url")
            return record
    if not url_volume(url) or not urlsplit(url).scheme:
        raise NotFound(f"backup_url {url!r} is not a Longhorn backup URL", field="backup_url")
    raise NotFound(f"volume {own_volume} has no backup with URL {url!r}", field="backup_url")


def plan(claim: Claim, source_volume: str, backup: BackupRecord, target_namespace: str,
         target_pvc: str) -> RestorePlan:
    """Longhorn gives a volume restored `fromBackup` the backup's `volumeSize`, whatever size
    is asked for. When the source PVC has grown since the backup, the restored volume is
    expanded to the source's size; the PV and PVC carry the size the volume will have."""
    volume = f"pvc-{uuid.uuid4()}"
    pvc = claim.pvc
    source_size = pvc.requested or pvc.capacity or ""
    source_bytes = quantity_bytes(source_size)
    backup_bytes = quantity_bytes(backup.volume_size)
    backup_size = quantity(backup_bytes) if backup_bytes else ""
    expand_to = ""
    if backup_bytes and source_bytes and source_bytes > backup_bytes:
        expand_to = str(source_bytes)
    size = (source_size if expand_to else backup_size) or source_size
    storage_class = pvc.storage_class or ""
    create_args = {"fromBackup": backup.url}
    if backup_bytes:
        create_args["size"] = str(backup_bytes)
    calls = [PlannedCall("longhorn.createVolume", volume, create_args)]
    if expand_to:
        calls.append(PlannedCall("longhorn.expand", volume, {"size": expand_to, "from": backup_size,
                                                             "to": source_size}))
    calls += [
        PlannedCall("kubernetes.createPersistentVolume", volume,
                    {"claimRef": f"{target_namespace}/{target_pvc}", "storageClassName": storage_class,
                     "capacity": size}),
        PlannedCall("kubernetes.createPersistentVolumeClaim", f"{target_namespace}/{target_pvc}",
                    {"volumeName": volume, "storage": size, "accessModes": list(pvc.access_modes)}),
    ]
    return RestorePlan(driver="longhorn", namespace=pvc.namespace, pvc=pvc.name, source_volume=source_volume,
                       backup=backup, target_namespace=target_namespace, target_pvc=target_pvc, volume=volume,
                       pv=volume, storage_class=storage_class, access_modes=pvc.access_modes, size=size,
                       calls=tuple(calls), backup_size=backup_size, source_size=source_size, expand_to=expand_to)


def _labels(p: RestorePlan) -> dict[str, str]:
    """`<ns>.<pvc>` and the backup's name, shortened with a hash past 63 characters (never merely
    cut: two long names sharing a start keep distinct values)."""
    return {RESTORED_FROM: label_value(f"{p.namespace}.{p.pvc}"), RESTORED_BACKUP: label_value(p.backup.name),
            **p.extra_labels}


def _annotations(p: RestorePlan, requested_by: str) -> dict[str, str]:
    return {"soteria.io/source": f"{p.namespace}/{p.pvc}", "soteria.io/backup-url": p.backup.url,
            "soteria.io/requested-by": requested_by, "soteria.io/source-volume": p.source_volume}


def pv_body(p: RestorePlan, requested_by: str, fs_type: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": p.pv, "labels": _labels(p), "annotations": {
            **_annotations(p, requested_by), "pv.kubernetes.io/provisioned-by": "driver.longhorn.io"}},
        "spec": {
            "capacity": {"storage": p.size},
            "accessModes": list(p.access_modes),
            "persistentVolumeReclaimPolicy": "Retain",
            "storageClassName": p.storage_class,
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": p.target_namespace,
                         "name": p.target_pvc},
            "csi": {"driver": "driver.longhorn.io", "volumeHandle": p.volume, "fsType": fs_type},
        },
    }


def pvc_body(p: RestorePlan, requested_by: str) -> dict:
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": p.target_pvc, "namespace": p.target_namespace, "labels": _labels(p),
                     "annotations": _annotations(p, requested_by)},
        "spec": {"accessModes": list(p.access_modes), "storageClassName": p.storage_class,
                 "resources": {"requests": {"storage": p.size}}, "volumeName": p.pv},
    }


def _expandable(current: longhorn.Volume | None) -> bool:
    """Attached for the restore (or detached once it is done) with its replicas scheduled:
    the states in which Longhorn's manager accepts `expand`. A new restore volume is briefly
    detached before it attaches, so "detached" counts only once nothing is left to restore."""
    if current is None:
        return False
    scheduled = ((current.conditions or {}).get("Scheduled") or {}).get("status", "True")
    ready_state = current.state == "attached" or (current.state == "detached" and not current.restore_required)
    return ready_state and scheduled == "True"


def _expand(p: RestorePlan) -> RestorePlan:
    """Expand the restored volume to the source's size (Longhorn's engine finishes an
    expansion before it goes on restoring). Waits until the volume is in a state Longhorn
    expands in, retrying a refusal for the state, up to ACCEPT_TIMEOUT; if Longhorn still
    refuses, the claim gets the backup's size and the answer says it is smaller."""
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    delay = 0.1
    while True:
        try:
            if _expandable(longhorn.get_volume(p.volume)) or time.monotonic() >= deadline:
                longhorn.expand_volume(p.volume, p.expand_to)
                return p
        except SoteriaError as exc:
            if "invalid volume state" not in exc.detail or time.monotonic() >= deadline:
                return _smaller(p, exc)
        time.sleep(delay)
        delay = min(delay * 2, 1.0)


def _smaller(p: RestorePlan, exc: SoteriaError) -> RestorePlan:
    log.warning("could not expand restored volume %s to %s: %s", p.volume, p.source_size, exc.detail)
    note = (f"the restored volume is {p.backup_size}, the size of volume {p.source_volume} when backup "
            f"{p.backup.name} was taken, smaller than PVC {p.namespace}/{p.pvc} now ({p.source_size}): "
            f"Longhorn did not expand it ({exc.detail}); expand PVC {p.target_namespace}/{p.target_pvc} "
            "if the storage class allows it")
    return replace(p, size=p.backup_size, expand_to="", size_note=note)


def execute(p: RestorePlan, source: longhorn.Volume, fs_type: str, requested_by: str) -> RestorePlan:
    """Create volume (expanded when the source grew), PV and PVC; on any failure delete what
    was created, newest first. Returns the plan as carried out (sizes may differ)."""
    created: list[tuple[str, str]] = []
    step = ("volume", p.volume)
    try:
        longhorn.create_volume(p.volume, size=str(quantity_bytes(p.backup_size) or source.size or "0"),
                               from_backup=p.backup.url,
                               number_of_replicas=source.number_of_replicas, access_mode=source.access_mode,
                               stale_replica_timeout=source.stale_replica_timeout, data_engine=source.data_engine)
        created.append(step)
        _wait_accepted(p.volume)
        if p.expand_to:
            p = _expand(p)
        step = ("pv", p.pv)
        kubernetes.create_pv(pv_body(p, requested_by, fs_type))
        created.append(step)
        step = ("pvc", f"{p.target_namespace}/{p.target_pvc}")
        kubernetes.create_pvc(p.target_namespace, pvc_body(p, requested_by))
        created.append(step)
        return p
    except SoteriaError as exc:
        # A step that was refused made nothing; one that went unanswered may have (a lost
        # answer, a manager that carries a request out after Soteria gave up on it): undone too.
        maybe = step if step not in created and unanswered(exc) else None
        cleanup = undo(created + ([maybe] if maybe else []), unsure=maybe)
        raise restore_failed(exc, cleanup) from None


def undo(created: list[tuple[str, str]], unsure: tuple[str, str] | None = None) -> dict:
    """Delete what a restore created, newest first. `unsure`, the step whose create went
    unanswered, is deleted if it exists; a Longhorn volume is first given one upstream timeout
    to appear, as the manager may still be creating it."""
    deleted, errors = [], []
    for kind, name in reversed(created):
        try:
            if (kind, name) == unsure and kind == "volume" and not _appeared(name):
                continue
            if kind == "pvc":
                namespace, pvc = name.split("/", 1)
                kubernetes.delete_pvc(namespace, pvc)
            elif kind == "pv":
                kubernetes.delete_pv(name)
            else:
                longhorn.delete_volume(name)
            deleted.append(f"{kind} {name}" + (" (if its unanswered create made it)" if (kind, name) == unsure
                                                 else ""))
        except SoteriaError as exc:
            log.error("cleanup of %s %s failed: %s", kind, name, exc.detail)
            errors.append(f"{kind} {name}: {exc.detail}")
    return {"succeeded": not errors, "deleted": deleted, "errors": errors}


def _appeared(volume: str) -> bool:
    """Whether a volume whose create went unanswered exists, or appears within one upstream timeout."""
    deadline = time.monotonic() + settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS
    while True:
        if longhorn.get_volume(volume) is not None:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)


def _wait_accepted(volume: str) -> None:
    """Until Longhorn has the volume and has begun restoring it (or finished)."""
    deadline = time.monotonic() + ACCEPT_TIMEOUT
    delay = 0.1
    while True:
        current = longhorn.get_volume(volume)
        if current is not None and (current.restore_initiated or current.restore_required
                                    or current.state not in ("", "creating")):
            return
        if time.monotonic() > deadline:
            raise UpstreamTimeout("longhorn", f"Longhorn did not accept restore volume {volume} "
                                              f"within {ACCEPT_TIMEOUT:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 1.0)
