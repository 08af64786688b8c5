"""Backups: the snapshotBackup action, how a backup looks, and its progress.

A backup is a record named backup-<16 hex>. It starts in state "" (new),
reports InProgress with rising progress, and after `op_seconds` the controller
copies the snapshot's files to DIR/backupstore/<backup volume>/<backup>/ and
marks it Completed with its URL, size and labels; the backup volume is created
or refreshed then. A backup of a snapshot that does not exist (yet) waits in
Pending, as in Longhorn. Progress is derived from the start time, so it needs
no writes; only transitions are stored.
"""

from __future__ import annotations

import json
from pathlib import Path

from . import util
from .api import ApiError, Ctx
from .constants import BACKUP_TARGET, BACKUP_TARGET_URL

RESERVED_LABELS = ("KubernetesStatus", "ranchervm-base-image")
ACCESS_MODE_LABEL = "longhorn.io/volume-access-mode"
KUBE_STATUS_KEYS = ("pvName", "pvStatus", "namespace", "pvcName", "lastPVCRefAt", "workloadsStatus",
                    "lastPodRefAt")


def backup_url(backup: dict) -> str:
    return f"{BACKUP_TARGET_URL}?backup={backup['name']}&volume={backup['volume']}"


def ticket_id(backup_name: str) -> str:
    return f"backup-controller-{backup_name}"


def is_live(backup: dict) -> bool:
    """True while the backup's state and progress move with the clock."""
    return bool(backup.get("op")) and backup["state"] != "Pending" and backup.get("deleting") is None


def view(emu, backup: dict, now: float) -> tuple[str, int]:
    """(state, progress) of a backup at time `now`."""
    if backup.get("deleting") is not None and emu.v18:
        return "Deleting", backup["progress"]
    if not is_live(backup):
        return backup["state"], backup["progress"]
    op = backup["op"]
    duration = max(op["duration"], 1e-6)
    elapsed = now - op["started"]
    if elapsed < 0.1 * duration:
        return "", 0
    return "InProgress", max(0, min(99, int((elapsed - 0.1 * duration) / (0.9 * duration) * 100)))


def status_item(emu, backup: dict, now: float) -> dict:
    """One entry of a volume's backupStatus[] (a raw nested object: no type, null links)."""
    state, progress = view(emu, backup, now)
    return {"id": backup["name"], "snapshot": backup["snapshot"], "progress": progress,
            "backupURL": backup["url"], "error": backup["error"], "state": state,
            "replica": backup["replica"], "size": backup["size"], "links": None, "actions": None}


def render_backup(emu, ctx: Ctx, backup: dict, now: float) -> dict:
    state, progress = view(emu, backup, now)
    fields = {
        "name": backup["name"], "state": state, "progress": progress, "error": backup["error"],
        "url": backup["url"], "snapshotName": backup["snapshot"], "snapshotCreated": backup["snapshotCreated"],
        "created": backup["created"], "size": backup["size"], "labels": backup["labels"],
        "backupMode": backup["backupMode"], "messages": backup["messages"], "volumeName": backup["volume"],
        "volumeSize": backup["volumeSize"], "volumeCreated": backup["volumeCreated"],
        "volumeBackingImageName": "", "compressionMethod": backup["compressionMethod"],
        "newlyUploadDataSize": backup["newlyUploaded"], "reUploadedDataSize": backup["reUploaded"],
    }
    if emu.v18:
        fields["backupTargetName"] = backup["target"]
    return ctx.resource("backup", backup["name"], fields)


def content_dir(emu, backup: dict) -> Path | None:
    """Where a restore of this backup reads its files from."""
    if backup["content"]:
        return emu.backup_dir(backup["bv"], backup["name"])
    live = emu.volume_dir(backup["volume"])  # bulk-seeded backups restore the volume as it is now
    return live if live.is_dir() else None


def go_json_kube_status(status: dict) -> str:
    """KubernetesStatus as Go's json.Marshal writes it (struct field order)."""
    return json.dumps({key: status.get(key) for key in KUBE_STATUS_KEYS}, separators=(",", ":"))


def kubernetes_status_from_label(label: str, snapshot_created: str) -> dict:
    """A restored volume's kubernetesStatus: the backup's, marked historical, PV fields cleared."""
    try:
        status = json.loads(label)
    except ValueError:
        return {}
    if not isinstance(status, dict):
        return {}
    status = {key: status.get(key) for key in KUBE_STATUS_KEYS if key in status}
    if status.get("pvcName") and not status.get("lastPVCRefAt"):
        status["lastPVCRefAt"] = snapshot_created
    if status.get("workloadsStatus") and not status.get("lastPodRefAt"):
        status["lastPodRefAt"] = snapshot_created
    status["pvName"] = status["pvStatus"] = ""
    return status


def validate_labels(labels: dict) -> dict:
    for key, value in labels.items():
        error = util.qualified_name_error(key)
        if error:
            raise ApiError(f"at least one error encountered while validating backup label with key {key}: {error}")
        if value == "":
            raise ApiError(f"value for label with key {key} cannot be empty")
    for key in RESERVED_LABELS:
        if key in labels:
            raise ApiError(f"specified snapshot backup labels contain reserved keyword {key}")
    return dict(labels)


def new_record(emu, name: str, volume: str, **fields) -> dict:
    """A backup record with every field present (seeding fills in history)."""
    record = {
        "name": name, "volume": volume, "bv": emu.bv_id(volume), "target": BACKUP_TARGET, "state": "",
        "progress": 0, "error": "", "url": "", "snapshot": "", "snapshotCreated": "", "created": "",
        "size": "", "labels": None, "specLabels": {}, "backupMode": "incremental", "volumeSize": "",
        "volumeCreated": "", "compressionMethod": "lz4", "newlyUploaded": "", "reUploaded": "",
        "replica": "", "messages": None, "storageClassName": "", "content": False, "op": None,
        "deleting": None,
    }
    record.update(fields)
    return record


# Starting ------------------------------------------------------------------------
def snapshot_gate(emu, backup: dict, now: float) -> dict:
    """Pending while the snapshot is missing or not ready; otherwise start now."""
    snapshot = emu.store.get("snapshots", backup["snapshot"])
    if snapshot is None:
        return {"state": "Pending", "messages": {"info": f"Failed to get the Snapshot {backup['snapshot']}"}}
    if snapshot["readyAt"] > now or snapshot.get("refused"):
        return {"state": "Pending", "messages": {"info": f"Waiting for the snapshot {backup['snapshot']} to be ready"}}
    return {"state": "", "messages": {}, "snapshotCreated": snapshot["creationTime"],
            "op": {**backup["op"], "started": now}}


# Controller ---------------------------------------------------------------------
def advance(emu, now: float) -> None:
    sweep_failed(emu, now)
    for name in list(emu.active_backups):
        backup = emu.store.get("backups", name)
        if backup is None:
            emu.active_backups.discard(name)
        elif backup.get("deleting") is not None:
            if now - backup["deleting"] >= emu.step:
                remove(emu, backup)
        elif not backup.get("op"):
            emu.active_backups.discard(name)
        else:
            _advance_one(emu, backup, now)
    for bv_id in list(emu.active_backup_volumes):
        bv = emu.store.get("backup_volumes", bv_id)
        if bv is None or not bv.get("deleting"):
            emu.active_backup_volumes.discard(bv_id)
        elif now - bv["deleting"] >= emu.step:
            _remove_backup_volume(emu, bv)


def _advance_one(emu, backup: dict, now: float) -> None:
    volume = emu.store.get("volumes", backup["volume"])
    op = backup["op"]
    if volume is None or volume["deleting"]:
        fail(emu, backup, f'Cannot find the corresponding volume: volume.longhorn.io "{backup["volume"]}" not found')
    elif backup["state"] == "Pending":
        changes = snapshot_gate(emu, backup, now)
        if changes["state"] != "Pending" or changes["messages"] != backup["messages"]:
            emu.store.update("backups", backup["name"], **changes)
    elif (op["fail"] or op.get("final")) and now - op["started"] >= 0.55 * op["duration"]:
        fail(emu, backup, op["fail"] or "", view(emu, backup, now)[1], state=op.get("final") or "Error")
    elif now - op["started"] >= op["duration"]:
        _complete(emu, backup, now)


def fail(emu, backup: dict, message: str, progress: int | None = None, state: str = "Error") -> None:
    """End a backup in Error (or Unknown: the engine reported a state the manager does not know)."""
    now = util.now()
    emu.store.update("backups", backup["name"], state=state, error=message, op=None,
                     progress=backup["progress"] if progress is None else progress,
                     syncedAt=util.rfc3339(now), failedAt=now)
    emu.set_ticket(backup["volume"], ticket_id(backup["name"]), None)
    emu.active_backups.discard(backup["name"])


def _complete(emu, backup: dict, now: float) -> None:
    snapshot_dir = emu.snapshot_dir(backup["volume"], backup["snapshot"])
    source = snapshot_dir if snapshot_dir.is_dir() else emu.volume_dir(backup["volume"])
    target = emu.backup_dir(backup["bv"], backup["name"])
    util.copy_dir(source, target)
    size = util.dir_size(target)
    previous = _latest(emu, backup["bv"], backup["volume"], with_content=True)
    newly = size
    if previous is not None and backup["backupMode"] == "incremental":
        newly = util.changed_bytes(target, emu.backup_dir(previous["bv"], previous["name"]))
    with emu.store.lock:
        current = emu.store.get("backups", backup["name"])
        if current is None or current.get("deleting") is not None:
            emu.remove_dir(target)
            return
        volume = emu.store.get("volumes", backup["volume"])
        emu.store.put("backups", backup["name"], {
            **current, "state": "Completed", "progress": 100, "url": backup_url(current),
            "created": util.rfc3339(now), "size": str(size), "labels": dict(current["specLabels"]),
            "newlyUploaded": str(newly), "reUploaded": "0", "content": True, "op": None, "messages": None,
            "volumeCreated": volume["createdAt"] if volume else "",
        })
        ensure_backup_volume(emu, backup["volume"], now)
        refresh_backup_volume(emu, backup["bv"], latest=backup["name"])
    emu.set_ticket(backup["volume"], ticket_id(backup["name"]), None)
    emu.active_backups.discard(backup["name"])
    _cleanup_snapshot(emu, backup)


def _cleanup_snapshot(emu, backup: dict) -> None:
    """Longhorn 1.9's auto-cleanup-snapshot-after-on-demand-backup-completed (off by default):
    delete the backed-up snapshot, except for recurring-job backups."""
    if not emu.config["auto_cleanup_snapshot_after_backup"] or not backup["snapshot"]:
        return
    if "RecurringJob" in (backup["specLabels"] or {}):
        return
    from . import snapshots
    snapshots.delete(emu, backup["snapshot"])


def sweep_failed(emu, now: float) -> int:
    """The backup volume controller's clean-up: Error/Unknown backups of this cluster
    (with a snapshot name) older than failed-backup-ttl minutes are deleted. Runs once per
    backupstore poll; a TTL of 0 turns it off."""
    config = emu.config
    ttl = float(config["failed_backup_ttl_minutes"]) * 60
    if ttl <= 0 or now - emu.last_ttl_sweep < float(config["backup_poll_seconds"]):
        return 0
    emu.last_ttl_sweep = now
    with emu.store.lock:
        expired = [b for b in emu.store.tables["backups"].values()
                   if b["state"] in ("Error", "Unknown") and b["snapshot"] and b.get("deleting") is None
                   and now > (b.get("failedAt") or now) + ttl]
        for backup in expired:
            remove(emu, backup)
    return len(expired)


def remove(emu, backup: dict) -> None:
    """Delete a backup record and its files (the end of backupDelete)."""
    with emu.store.lock:
        emu.store.delete("backups", backup["name"])
        refresh_backup_volume(emu, backup["bv"])
    emu.remove_dir(emu.backup_dir(backup["bv"], backup["name"]))
    emu.set_ticket(backup["volume"], ticket_id(backup["name"]), None)
    emu.active_backups.discard(backup["name"])


def _remove_backup_volume(emu, bv: dict) -> None:
    with emu.store.lock:
        for backup in emu.store.records_for_volume("backups", bv["volume"]):
            if backup["bv"] == bv["id"]:
                emu.store.delete("backups", backup["name"])
                emu.active_backups.discard(backup["name"])
        emu.store.delete("backup_volumes", bv["id"])
    emu.remove_dir(emu.dir / "backupstore" / bv["id"])
    emu.active_backup_volumes.discard(bv["id"])


# Backup volumes as records ------------------------------------------------------
def _latest(emu, bv_id: str, volume: str, with_content: bool = False) -> dict | None:
    done = [b for b in emu.store.records_for_volume("backups", volume)
            if b["bv"] == bv_id and b["state"] == "Completed" and b.get("deleting") is None
            and (b["content"] or not with_content)]
    return max(done, key=lambda b: (b["created"], b["name"]), default=None)


def ensure_backup_volume(emu, volume: str, now: float) -> dict:
    bv_id = emu.bv_id(volume)
    bv = emu.store.get("backup_volumes", bv_id)
    if bv is None:
        bv = emu.store.put("backup_volumes", bv_id, {
            "id": bv_id, "volume": volume, "target": BACKUP_TARGET, "created": util.rfc3339(now), "size": "",
            "labels": None, "lastBackupName": "", "lastBackupAt": "", "dataStored": "0",
            "storageClassName": "", "messages": None, "deleting": None, "syncRequestedAt": 0.0})
    return bv


def refresh_backup_volume(emu, bv_id: str, latest: str = "") -> None:
    """Recompute a backup volume's summary from its completed backups.

    `latest` names a backup that just completed: it becomes the last backup, as
    the backup store records it. Otherwise the newest by time wins, keeping the
    current one among equals (times have one-second resolution).
    """
    with emu.store.lock:
        bv = emu.store.get("backup_volumes", bv_id)
        if bv is None:
            return
        done = [b for b in emu.store.records_for_volume("backups", bv["volume"])
                if b["bv"] == bv_id and b["state"] == "Completed" and b.get("deleting") is None]
        newest = max((b["created"] for b in done), default="")
        last = next((b for b in done if b["name"] == latest), None) or max(
            (b for b in done if b["created"] == newest),
            key=lambda b: (b["name"] == bv["lastBackupName"], b["name"]), default=None)
        summary = {
            "lastBackupName": last["name"] if last else "", "lastBackupAt": last["created"] if last else "",
            "dataStored": str(sum(int(b["size"] or 0) for b in done)),
            "labels": last["labels"] if last else bv["labels"], "size": last["volumeSize"] if last else bv["size"],
            "storageClassName": (last["storageClassName"] if last else "") or bv["storageClassName"],
        }
        if any(bv.get(key) != value for key, value in summary.items()):
            emu.store.put("backup_volumes", bv_id, {**bv, **summary})
