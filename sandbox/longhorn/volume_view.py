"""How a volume looks in the API: every field of the manager's `volume` resource.

Big lists are the benchmark path (10,000 volumes with 50 backups each), so the
`backupStatus` array of each volume is encoded once and cached until one of the
volume's backups changes; the rest of the volume is small.
"""

from __future__ import annotations

from . import backups
from .api import Ctx, dumps, not_found
from .constants import NODE
from .util import short_hash

_BACKUP_STATUS_MARK = "\x00backupStatus\x00"

# Actions the emulator implements, in the states the manager advertises them.
ALWAYS = ("attach", "detach")
NOT_FAULTED = ("snapshotCRCreate", "snapshotCRGet", "snapshotCRList", "snapshotCRDelete", "snapshotBackup")
DETACHED = ("pvCreate", "pvcCreate", "expand")
ATTACHED = ("snapshotCreate", "snapshotList", "snapshotGet", "snapshotDelete", "pvCreate", "pvcCreate", "expand")


def engine_running(volume: dict) -> bool:
    return volume["state"] in ("attached", "detaching")


def robustness(volume: dict) -> str:
    if volume.get("faulted"):
        return "faulted"
    return "healthy" if engine_running(volume) else "unknown"


def ready(volume: dict) -> bool:
    auto_attached = volume["nodeID"] == "" and volume["state"] != "detached"
    return not (auto_attached or volume.get("faulted") or volume["restoreRequired"])


def actions(volume: dict) -> list[str]:
    names = list(ALWAYS)
    if volume.get("faulted"):
        return names
    names += NOT_FAULTED
    if volume["state"] == "detached":
        names += DETACHED
    elif volume["state"] == "attached":
        names += ATTACHED
    return names


def replica_names(volume: dict) -> list[str]:
    name = volume["name"]
    return [f"{name}-r-{short_hash(f'{name}-{i}', 'sha1')}" for i in range(volume["numberOfReplicas"])]


def _replicas(emu, volume: dict, running: bool) -> list[dict]:
    result = []
    for replica in replica_names(volume):
        result.append({
            "name": replica, "hostId": NODE, "address": "127.0.0.1" if running else "", "running": running,
            "image": emu.engine_image, "currentImage": emu.engine_image if running else "",
            "instanceManagerName": f"instance-manager-{short_hash(NODE)}" if running else "",
            "diskID": short_hash(f"{NODE}-disk"), "diskPath": "/var/lib/longhorn/",
            "dataPath": f"/var/lib/longhorn/replicas/{volume['name']}-{replica[-8:]}",
            "mode": "RW" if running else "", "failedAt": "", "dataEngine": volume["dataEngine"],
        })
    return result


def _controllers(emu, volume: dict, running: bool, actual_size: int) -> list[dict]:
    restore = volume.get("restore") or {}
    frontend_on = running and volume["frontend"] == "blockdev" and not volume["restoreRequired"]
    return [{
        "name": f"{volume['name']}-e-0", "hostId": NODE if running else "",
        "address": "127.0.0.1" if running else "", "running": running,
        "image": emu.engine_image, "currentImage": emu.engine_image if running else "",
        "instanceManagerName": f"instance-manager-{short_hash(NODE)}" if running else "",
        "size": str(volume["size"]), "actualSize": str(actual_size),
        "endpoint": f"/dev/longhorn/{volume['name']}" if frontend_on else "",
        "lastRestoredBackup": volume["lastRestoredBackup"],
        "requestedBackupRestore": restore.get("backup", "") if volume["restoreRequired"] else "",
        "isExpanding": False, "lastExpansionError": "", "lastExpansionFailedAt": "",
        "unmapMarkSnapChainRemovedEnabled": False,
    }]


def _restore_status(volume: dict, running: bool, now: float) -> list[dict]:
    restore = volume.get("restore")
    if not restore or not running:
        return []
    progress = restore_progress(restore, now)
    done = restore["state"] == "complete"
    return [{
        "replica": replica, "isRestoring": restore["state"] == "in_progress",
        "lastRestored": restore["backup"] if done else "", "progress": progress,
        "error": restore["error"], "filename": "", "state": restore["state"],
        "backupURL": restore["url"], "links": None, "actions": None,
    } for replica in replica_names(volume)]


def restore_progress(restore: dict, now: float) -> int:
    if restore["state"] == "complete":
        return 100
    if restore.get("progress") is not None:  # frozen by a failure
        return restore["progress"]
    if not restore.get("started"):
        return 0
    fraction = (now - restore["started"]) / max(restore["duration"], 1e-6)
    return max(0, min(99, int(fraction * 100)))


def _attachments(volume: dict) -> dict:
    satisfied = volume["state"] == "attached"
    return {
        "volume": volume["name"],
        "attachments": {ticket_id: {
            "attachmentID": ticket_id, "attachmentType": ticket["type"], "nodeID": NODE,
            "parameters": ticket["parameters"], "satisfied": satisfied, "conditions": [],
        } for ticket_id, ticket in volume["tickets"].items()},
    }


def volume_fields(emu, volume: dict, bv: dict | None, snapshot_sizes: list[int], now: float) -> dict:
    """The volume's API fields except backupStatus (the caller adds that)."""
    running = engine_running(volume)
    fields = {key: volume[key] for key in (
        "name", "frontend", "disableFrontend", "fromBackup", "restoreVolumeRecurringJob", "dataSource",
        "dataLocality", "staleReplicaTimeout", "image", "backingImage", "created", "lastAttachedBy",
        "standby", "restoreRequired", "restoreInitiated", "revisionCounterDisabled",
        "snapshotDataIntegrity", "unmapMarkSnapChainRemoved", "backupCompressionMethod",
        "replicaSoftAntiAffinity", "replicaZoneSoftAntiAffinity", "replicaDiskSoftAntiAffinity",
        "dataEngine", "freezeFilesystemForSnapshot", "diskSelector", "nodeSelector",
        "numberOfReplicas", "replicaAutoBalance", "accessMode", "migratable", "encrypted",
        "kubernetesStatus", "conditions", "state")}
    fields.update({
        "size": str(volume["size"]),
        "snapshotMaxSize": str(volume["snapshotMaxSize"]),
        "snapshotMaxCount": emu.snapshot_max_count(volume),
        "robustness": robustness(volume),
        "currentImage": emu.engine_image if running else "",
        "lastBackup": bv["lastBackupName"] if bv else "",
        "lastBackupAt": bv["lastBackupAt"] if bv else "",
        "recurringJobSelector": None,
        "cloneStatus": {"sourceVolume": "", "snapshot": "", "state": "", "attemptCount": 0,
                        "nextAllowedAttemptAt": ""},
        "ready": ready(volume),
        "shareEndpoint": "", "shareState": "",
        "replicas": _replicas(emu, volume, running),
        "controllers": _controllers(emu, volume, running, sum(snapshot_sizes)),
        "restoreStatus": _restore_status(volume, running, now),
        "purgeStatus": None,
        "rebuildStatus": [],
        "volumeAttachment": _attachments(volume),
    })
    if emu.v18:
        fields["backupTargetName"] = volume["backupTargetName"]
    return fields


def render_volume(emu, ctx: Ctx, volume: dict, now: float) -> dict:
    """One volume as a resource dict (the single-volume path)."""
    emu.scan(1)
    store = emu.store
    with store.lock:
        bv = store.get("backup_volumes", emu.bv_id(volume["name"]))
        snaps = [s["size"] for s in store.records_for_volume("snapshots", volume["name"])]
        records = store.records_for_volume("backups", volume["name"])
    fields = volume_fields(emu, volume, bv, snaps, now)
    fields["backupStatus"] = [backups.status_item(emu, b, now) for b in sorted(records, key=_name)]
    return ctx.resource("volume", volume["name"], fields, actions(volume))


def render_volume_list(emu, ctx: Ctx, now: float) -> str:
    """GET /v1/volumes as JSON text, reusing each volume's cached backupStatus."""
    emu.scan(len(emu.store.tables["volumes"]))
    store = emu.store
    rows = []
    with store.lock:
        for volume in sorted(store.tables["volumes"].values(), key=_name):
            name = volume["name"]
            revision = store.backup_revision[name]
            cached = emu.status_cache.get(name)
            records = None if cached and cached[0] == revision else store.records_for_volume("backups", name)
            bv = store.get("backup_volumes", emu.bv_id(name))
            snaps = [s["size"] for s in store.records_for_volume("snapshots", name)]
            rows.append((volume, revision, records, bv, snaps))
    parts = []
    for volume, revision, records, bv, snaps in rows:
        fields = volume_fields(emu, volume, bv, snaps, now)
        fields["backupStatus"] = _BACKUP_STATUS_MARK
        text = dumps(ctx.resource("volume", volume["name"], fields, actions(volume)))
        parts.append(text.replace(dumps(_BACKUP_STATUS_MARK), _status_json(emu, volume["name"], revision,
                                                                            records, now), 1))
    envelope = dumps(ctx.collection("volume", [], create=True))
    return envelope.replace('"data":[]', '"data":[' + ",".join(parts) + "]", 1)


def _status_json(emu, volume: str, revision: int, records: list[dict] | None, now: float) -> str:
    if records is None:
        return emu.status_cache[volume][1]
    items = [backups.status_item(emu, b, now) for b in sorted(records, key=_name)]
    text = dumps(items)
    if not any(backups.is_live(b) for b in records):
        emu.status_cache[volume] = (revision, text)
    return text


def _name(record: dict) -> str:
    return record["name"]


def volume_or_404(emu, name: str) -> dict:
    """A volume's record, or Longhorn's NotFound error for an action on a missing volume."""
    volume = emu.store.get("volumes", name)
    if volume is None:
        raise not_found("volume.longhorn.io", name).wrap("failed to get volume")
    return volume
