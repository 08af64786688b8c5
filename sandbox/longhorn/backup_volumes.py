"""Backup volumes and the backup actions on them (backupList, backupGet, ...).

Faithful to the manager's quirks: GET of an unknown backup volume answers 200
with an empty placeholder (Longhorn returns a stub object for its CSI driver's
sake), backupGet/backupDelete look a backup up by name whatever backup volume
is in the path, and backupList sorts by backup name (random, not by time).
1.7 lists the backups labelled with the id; 1.8 needs the backup volume to
exist and answers an empty list otherwise.
"""

from __future__ import annotations

from . import backups, util
from .api import ApiError, Ctx, empty_response, json_response, not_found
from .inputs import decode

SYNC_INTERVAL = 10  # seconds between two syncs of one backup volume


def actions(emu) -> list[str]:
    names = ["backupList", "backupGet", "backupDelete", "backupVolumeSync"]
    return names + ["backupListByVolume"] if emu.v18 else names


def render(emu, ctx: Ctx, bv_id: str, bv: dict | None) -> dict:
    """A backup volume, or the empty placeholder the manager returns for an unknown id."""
    bv = bv or {}
    fields = {
        "name": bv_id, "size": bv.get("size", ""), "labels": bv.get("labels"), "created": bv.get("created", ""),
        "lastBackupName": bv.get("lastBackupName", ""), "lastBackupAt": bv.get("lastBackupAt", ""),
        "dataStored": bv.get("dataStored", ""), "messages": bv.get("messages"), "backingImageName": "",
        "backingImageChecksum": "", "storageClassName": bv.get("storageClassName", ""),
    }
    if emu.v18:
        fields["backupTargetName"] = bv.get("target", "")
        fields["volumeName"] = bv.get("volume", "")
    return ctx.resource("backupVolume", bv_id, fields, actions(emu))


def _collection(emu, ctx: Ctx) -> dict:
    bvs = sorted(emu.store.values("backup_volumes"), key=lambda bv: bv["id"])
    return ctx.collection("backupVolume", [render(emu, ctx, bv["id"], bv) for bv in bvs])


def _backups(emu, ctx: Ctx, records: list[dict]) -> dict:
    now = util.now()
    data = [backups.render_backup(emu, ctx, b, now) for b in sorted(records, key=lambda b: b["name"])]
    return ctx.collection("backup", data)


# Routes -------------------------------------------------------------------------
def list_backup_volumes(emu, ctx: Ctx, request):
    return json_response(ctx, _collection(emu, ctx))


def sync_all(emu, ctx: Ctx, request):
    """PUT /v1/backupvolumes: the emulator's backup volumes are always in sync; answer the list."""
    decode(request.get_data(), "SyncBackupResource")
    return json_response(ctx, _collection(emu, ctx))


def get_backup_volume(emu, ctx: Ctx, request, bv_id: str):
    return json_response(ctx, render(emu, ctx, bv_id, emu.store.get("backup_volumes", bv_id)))


def delete_backup_volume(emu, ctx: Ctx, request, bv_id: str):
    """Deletes the backup volume and, after a step, every backup in it."""
    now = util.now()
    with emu.store.lock:
        bv = emu.store.get("backup_volumes", bv_id)
        if bv is None:
            raise not_found("backupvolumes.longhorn.io", bv_id).wrap(f"failed to delete backup volume '{bv_id}'")
        if not bv.get("deleting"):
            emu.store.update("backup_volumes", bv_id, deleting=now)
            for backup in emu.store.records_for_volume("backups", bv["volume"]):
                if backup["bv"] == bv_id and backup.get("deleting") is None:
                    emu.store.update("backups", backup["name"], deleting=now)
            emu.active_backup_volumes.add(bv_id)
    return empty_response(200)


# Actions --------------------------------------------------------------------------
def backup_list(emu, ctx: Ctx, request, bv_id: str):
    if emu.v18:
        bv = emu.store.get("backup_volumes", bv_id)
        records = [] if bv is None else [b for b in emu.store.records_for_volume("backups", bv["volume"])
                                         if b["target"] == bv["target"]]
    else:
        records = [b for b in emu.store.records_for_volume("backups", bv_id) if b["bv"] == bv_id]
    return json_response(ctx, _backups(emu, ctx, records))


def backup_list_by_volume(emu, ctx: Ctx, request, bv_id: str):
    """1.8: every backup of a volume on every target; the id in the path is not used."""
    body = decode(request.get_data(), "Volume")
    return json_response(ctx, _backups(emu, ctx, emu.store.records_for_volume("backups", body["name"])))


def _backup_name(request) -> str:
    body = decode(request.get_data(), "BackupInput")
    if not body["name"]:
        raise ApiError("empty backup name is not allowed")
    return body["name"]


def backup_get(emu, ctx: Ctx, request, bv_id: str):
    name = _backup_name(request)
    backup = emu.store.get("backups", name)
    if backup is None:
        raise not_found("backup.longhorn.io", name).wrap(f"failed to get backup '{name}' of volume '{bv_id}'")
    return json_response(ctx, backups.render_backup(emu, ctx, backup, util.now()))


def backup_delete(emu, ctx: Ctx, request, bv_id: str):
    """Deletes the named backup (if any); answers the backup volume in the path."""
    name = _backup_name(request)
    with emu.store.lock:
        backup = emu.store.get("backups", name)
        if backup is not None and backup.get("deleting") is None:
            emu.store.update("backups", name, deleting=util.now())
            emu.active_backups.add(name)
    return json_response(ctx, render(emu, ctx, bv_id, emu.store.get("backup_volumes", bv_id)))


def backup_volume_sync(emu, ctx: Ctx, request, bv_id: str):
    body = decode(request.get_data(), "SyncBackupResource")
    bv = emu.store.get("backup_volumes", bv_id)
    if body["syncBackupVolume"]:
        now = util.now()
        if bv is None:
            raise not_found("backupvolumes.longhorn.io", bv_id).wrap(
                f"failed to synchronize backup volume {bv_id}")
        if now - bv.get("syncRequestedAt", 0.0) < SYNC_INTERVAL:
            raise ApiError(f"failed to synchronize backup volume {bv_id}: failed to synchronize backup "
                           f"volume '{bv_id}' in {SYNC_INTERVAL} seconds")
        bv = emu.store.update("backup_volumes", bv_id, syncRequestedAt=now)
    return json_response(ctx, render(emu, ctx, bv_id, bv))
