"""Volumes: create (including restore from a backup), get, list, delete, attach, detach.

State machine, advanced by the controller loop one `emu.step` at a time:
creating -> detached; detached <-> attaching -> attached <-> detaching, driven
by attachment tickets (the attach action, a restore, a running backup);
deleting -> gone. A restore attaches the volume, copies the backup's files
into DIR/volumes/<name>/ after `op_seconds`, then detaches it.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from . import backups, util
from .api import ApiError, Ctx, empty_response, json_response, not_found
from .constants import BACKUP_TARGET, NODE
from .inputs import decode
from .volume_view import render_volume, render_volume_list

RESTORE_TICKET = "volume-restore-controller"
MUTATOR = 'admission webhook "mutator.longhorn.io" denied the request: '
VALIDATOR = 'admission webhook "validator.longhorn.io" denied the request: '
TRANSITIONS = {"attaching": "attached", "detaching": "detached", "creating": "detached"}

# Spec fields taken from the create body, with the defaults the mutator fills in.
SPEC_DEFAULTS = {
    "frontend": "blockdev", "disableFrontend": False, "fromBackup": "", "restoreVolumeRecurringJob": "ignored",
    "dataSource": "", "dataLocality": "disabled", "staleReplicaTimeout": 0, "backingImage": "",
    "standby": False, "revisionCounterDisabled": False, "snapshotDataIntegrity": "ignored",
    "unmapMarkSnapChainRemoved": "ignored", "backupCompressionMethod": "lz4",
    "replicaSoftAntiAffinity": "ignored", "replicaZoneSoftAntiAffinity": "ignored",
    "replicaDiskSoftAntiAffinity": "ignored", "dataEngine": "v1", "snapshotMaxCount": 250,
    "freezeFilesystemForSnapshot": "ignored", "diskSelector": None, "nodeSelector": None,
    "numberOfReplicas": 3, "replicaAutoBalance": "ignored", "accessMode": "rwo", "migratable": False,
    "encrypted": False,
}
EMPTY_KUBE_STATUS = {"pvName": "", "pvStatus": "", "namespace": "", "pvcName": "", "lastPVCRefAt": "",
                     "workloadsStatus": None, "lastPodRefAt": ""}


def condition(kind: str, status: str, at: str, reason: str = "", message: str = "") -> dict:
    return {"type": kind, "status": status, "lastProbeTime": "", "lastTransitionTime": at,
            "reason": reason, "message": message}


def new_record(emu, name: str, size: int, spec: dict, created: float) -> dict:
    """A volume record as the mutator leaves it, before any controller ran."""
    at = util.rfc3339(created)
    record = {**SPEC_DEFAULTS, **{k: v for k, v in spec.items() if k in SPEC_DEFAULTS}}
    record.update({
        "name": name, "size": size, "snapshotMaxSize": spec.get("snapshotMaxSize", 0),
        # A count given at create time; 0: the snapshot-max-count setting applies (see Emulator).
        "snapshotMaxCountSet": spec.get("snapshotMaxCount", 0),
        "created": util.go_time(created), "createdAt": at, "image": emu.engine_image,
        "backupTargetName": BACKUP_TARGET, "state": "creating", "since": created, "faulted": False,
        "nodeID": "", "lastAttachedBy": "", "tickets": {}, "kubernetesStatus": dict(EMPTY_KUBE_STATUS),
        "restoreRequired": False, "restoreInitiated": False, "restore": None, "restoredFromBV": "",
        "lastRestoredBackup": "", "deleting": False,
        "conditions": {kind: condition(kind, status, at) for kind, status in (
            ("Scheduled", "True"), ("Restore", "False"), ("TooManySnapshots", "False"),
            ("WaitForBackingImage", "False"))},
    })
    return record


# Handlers ---------------------------------------------------------------------
def list_volumes(emu, ctx: Ctx, request):
    return json_response(ctx, render_volume_list(emu, ctx, util.now()))


def get_volume(emu, ctx: Ctx, request, name: str):
    volume = emu.store.get("volumes", name)
    if volume is None:
        return empty_response(404)
    return json_response(ctx, render_volume(emu, ctx, volume, util.now()))


def respond(emu, ctx: Ctx, name: str):
    """The manager's usual action answer: the volume as it is now."""
    return get_volume(emu, ctx, None, name)


def delete_volume(emu, ctx: Ctx, request, name: str):
    with emu.store.lock:
        volume = emu.store.get("volumes", name)
        if volume is None:
            raise not_found("volumes.longhorn.io", name).wrap("failed to delete volume")
        if not volume["deleting"]:
            emu.store.update("volumes", name, deleting=True, state="deleting", since=util.now())
            emu.active_volumes.add(name)
    return empty_response(200)


def create_volume(emu, ctx: Ctx, request, fault=None):
    body = decode(request.get_data(), "Volume")
    name = body["name"]
    if body["standby"]:
        raise ApiError("the sandbox Longhorn emulator does not support standby (DR) volumes")
    try:
        size = util.parse_quantity(body["size"])
    except ValueError as exc:
        raise ApiError(f"failed to parse size {exc}") from None
    for kind, selector in (("disk", body["diskSelector"]), ("node", body["nodeSelector"])):
        for tag in selector or ():
            raise ApiError(f"specified {kind} tag {tag} does not exist")
    try:
        snapshot_max_size = util.parse_quantity(body["snapshotMaxSize"])
    except ValueError as exc:
        raise ApiError(f"failed to parse snapshot max size: {exc}") from None
    try:
        record = _admit(emu, body, size, snapshot_max_size, fault)
    except ApiError as exc:
        raise exc.wrap(f"unable to create volume {name}") from None
    return json_response(ctx, render_volume(emu, ctx, record, util.now()))


def _admit(emu, body: dict, size: int, snapshot_max_size: int, fault) -> dict:
    """What the admission webhooks and the API server do with a new Volume CR."""
    name = util.auto_correct_name(body["name"])
    spec = {key: body[key] for key in SPEC_DEFAULTS if body.get(key) not in ("", 0, None)}
    source = None
    if body["fromBackup"]:
        source = _restore_source(emu, body["fromBackup"], body["accessMode"])
        try:
            size = util.parse_quantity(source["volumeSize"] or "0")
        except ValueError as exc:
            raise ApiError(MUTATOR + f"get invalid size for volume {source['volumeSize']}: {exc}") from None
        if not body["accessMode"]:
            spec["accessMode"] = (source["labels"] or {}).get("longhorn.io/volume-access-mode", "rwo")
    spec["snapshotMaxSize"] = snapshot_max_size
    if spec.get("dataLocality") == "strict-local":
        spec["revisionCounterDisabled"] = True
    if not name:
        raise ApiError('Volume.longhorn.io "" is invalid: metadata.name: Required value: '
                       "name or generateName is required")
    _validate(name, {**SPEC_DEFAULTS, **spec})
    now = util.now()
    with emu.store.lock:
        if emu.store.get("volumes", name) is not None:
            raise ApiError(f'volumes.longhorn.io "{name}" already exists')
        record = new_record(emu, name, util.round_up_size(size), spec, now)
        if source is not None:
            record.update(_restore_fields(emu, record, source, fault, now))
        emu.store.put("volumes", name, record)
        emu.active_volumes.add(name)
    emu.remove_dir(emu.volume_dir(name))
    emu.volume_dir(name).mkdir(parents=True, exist_ok=True)
    return record


def _validate(name: str, spec: dict) -> None:
    if not util.valid_longhorn_name(name):
        raise ApiError(VALIDATOR + f"invalid name {name}")
    if spec["dataLocality"] not in ("disabled", "best-effort", "strict-local"):
        raise ApiError(VALIDATOR + f"invalid data locality mode: {spec['dataLocality']}")
    if spec["accessMode"] not in ("rwo", "rwx"):
        raise ApiError(VALIDATOR + f"invalid access mode: {spec['accessMode']}")
    if not 1 <= spec["numberOfReplicas"] <= 20:
        raise ApiError(VALIDATOR + f"replica count value {spec['numberOfReplicas']} must between 1 to 20")
    if spec["dataLocality"] == "strict-local" and spec["numberOfReplicas"] != 1:
        raise ApiError(VALIDATOR + "number of replica count should be 1 when data locality is strict-local")
    if spec["frontend"] not in ("blockdev", "iscsi", "nvmf"):
        raise ApiError(VALIDATOR + f"invalid volume frontend specified: {spec['frontend']}")
    if spec["migratable"] and spec["accessMode"] != "rwx":
        raise ApiError(VALIDATOR + "migratable volumes are only supported in ReadWriteMany (rwx) access mode")
    error = util.dns1123_label_error(name)
    if error:
        raise ApiError(VALIDATOR + f"invalid volume name: [{error}]")
    if spec["dataEngine"] not in ("v1", "v2"):
        raise ApiError(VALIDATOR + f"invalid data engine: {spec['dataEngine']}")
    if spec["dataEngine"] == "v2":
        raise ApiError(VALIDATOR + "v2-data-engine data engine is not enabled")


def _restore_source(emu, url: str, access_mode: str) -> dict:
    """The backup a fromBackup URL names, with the webhook's checks and messages."""
    query = parse_qs(urlsplit(url).query)
    bv_volume = query.get("volume", [""])[0]
    backup_name = query.get("backup", [""])[0]
    decode_error = None
    if not util.valid_longhorn_name(bv_volume):
        decode_error = f"invalid volume name parsed, got {bv_volume}"
    elif backup_name and not util.valid_longhorn_name(backup_name):
        decode_error = f"invalid backup name parsed, got {backup_name}"
    backup = emu.store.get("backups", backup_name)
    missing = f'backup.longhorn.io "{backup_name}" not found'
    if not access_mode:
        if decode_error:
            raise ApiError(MUTATOR + f"failed to decode backup url {url}: {decode_error}")
        if backup is None:
            raise ApiError(MUTATOR + f"failed to get backup {backup_name}: {missing}")
    if decode_error:
        raise ApiError(MUTATOR + f"cannot get backup and volume name from backup URL {url}: {decode_error}")
    bv_id = emu.bv_id(bv_volume)
    bv = emu.store.get("backup_volumes", bv_id)
    bv_missing = f'backupvolume.longhorn.io "{bv_id}" not found'
    if emu.v18:
        if backup is None:
            raise ApiError(MUTATOR + f"cannot get backup {backup_name}: {missing}")
        if bv is None:
            raise ApiError(MUTATOR + f"cannot get backup volume for backup target {BACKUP_TARGET} "
                                     f"and volume {bv_volume}: {bv_missing}")
    else:
        if bv is None:
            raise ApiError(MUTATOR + f"cannot get backup volume {bv_id}: {bv_missing}")
        if backup is None:
            raise ApiError(MUTATOR + f"cannot get backup {backup_name}: {missing}")
    return backup


def _restore_fields(emu, record: dict, backup: dict, fault, now: float) -> dict:
    """Status of a volume right after a restore was initiated."""
    at = util.rfc3339(now)
    fail = fault.message if fault is not None and fault.mode == "fail_async" else None
    if backup["state"] != "Completed":
        fail = fail or f"failed to restore backup {backup['url'] or backup['name']}: " \
                       f"backup {backup['name']} is in state {backup['state'] or 'New'}, not Completed"
    kube = dict(EMPTY_KUBE_STATUS)
    label = (backup["labels"] or {}).get("KubernetesStatus")
    if label:
        kube.update(backups.kubernetes_status_from_label(label, backup["snapshotCreated"]))
    return {
        "restoreRequired": True, "restoreInitiated": True, "kubernetesStatus": kube,
        "restoredFromBV": backup["bv"], "tickets": {RESTORE_TICKET: _ticket("volume-restore-controller")},
        "restore": {"backup": backup["name"], "url": record["fromBackup"], "bv": backup["bv"],
                    "started": None, "duration": emu.op_seconds, "fail": fail, "state": "in_progress",
                    "error": "", "progress": None},
        "conditions": {**record["conditions"],
                       "Restore": condition("Restore", "True", at, "RestoreInProgress")},
    }


def _ticket(kind: str, parameters: dict | None = None) -> dict:
    return {"type": kind, "parameters": parameters or {}}


# Attach and detach --------------------------------------------------------------
def attach(emu, ctx: Ctx, request, name: str):
    body = decode(request.get_data(), "AttachInput")
    prefix = f"unable to attach volume {name} to {body['hostId']}"
    if body["hostId"] != NODE:
        raise not_found("node.longhorn.io", body["hostId"]).wrap(prefix)
    volume = emu.store.get("volumes", name)
    if volume is None:
        raise not_found("volume.longhorn.io", name).wrap(prefix)
    if volume["conditions"]["Restore"]["status"] == "True":
        raise ApiError(f"{prefix}: volume {name} is restoring data")
    if volume["restoreRequired"]:
        raise ApiError(f"{prefix}: volume {name} is pending restoring")
    parameters = {"disableFrontend": str(body["disableFrontend"]).lower(), "lastAttachedBy": body["attachedBy"]}
    emu.set_ticket(name, body["attachmentID"], _ticket(body["attacherType"] or "longhorn-api", parameters))
    emu.store.update("volumes", name, nodeID=NODE, lastAttachedBy=body["attachedBy"])
    return respond(emu, ctx, name)


def detach(emu, ctx: Ctx, request, name: str):
    body = decode(request.get_data(), "DetachInput")
    with emu.store.lock:
        volume = emu.store.get("volumes", name)
        if volume is None:
            raise not_found("volume.longhorn.io", name).wrap(f"unable to detach volume {name}")
        tickets = {} if body["forceDetach"] else {
            k: v for k, v in volume["tickets"].items() if k != body["attachmentID"]}
        api_left = any(t["type"] == "longhorn-api" for t in tickets.values())
        emu.store.update("volumes", name, tickets=tickets, nodeID=NODE if api_left else "")
        emu.active_volumes.add(name)
    return respond(emu, ctx, name)


# Controller ---------------------------------------------------------------------
def needs_attention(volume: dict) -> bool:
    attached = volume["state"] in ("attached", "attaching")
    return (volume["deleting"] or volume["state"] in TRANSITIONS or bool(volume["tickets"]) != attached
            or (volume["restore"] is not None and volume["restore"]["state"] == "in_progress"))


def advance(emu, now: float) -> None:
    for name in list(emu.active_volumes):
        volume = emu.store.get("volumes", name)
        if volume is None:
            emu.active_volumes.discard(name)
            continue
        if now - volume["since"] >= emu.step:
            _step(emu, volume, now)
        volume = emu.store.get("volumes", name)
        if volume is not None and volume["restore"] and volume["state"] == "attached":
            _advance_restore(emu, volume, now)
        volume = emu.store.get("volumes", name)
        if volume is None or not needs_attention(volume):
            emu.active_volumes.discard(name)


def _step(emu, volume: dict, now: float) -> None:
    name, state = volume["name"], volume["state"]
    if volume["deleting"]:
        with emu.store.lock:
            emu.store.delete("volumes", name)
            for snapshot in emu.store.keys_for_volume("snapshots", name):
                emu.store.delete("snapshots", snapshot)
            emu.status_cache.pop(name, None)
        emu.remove_dir(emu.volume_dir(name))
        emu.remove_dir(emu.dir / "snapshots" / name)
        return
    wanted = bool(volume["tickets"])
    if state in TRANSITIONS:
        state = TRANSITIONS[state]
    elif state == "detached" and wanted:
        state = "attaching"
    elif state == "attached" and not wanted:
        state = "detaching"
    else:
        return
    changes = {"state": state, "since": now}
    if state == "attached" and volume["restore"] and not volume["restore"]["started"]:
        changes["restore"] = {**volume["restore"], "started": now}
    emu.store.update("volumes", name, **changes)


def _advance_restore(emu, volume: dict, now: float) -> None:
    restore = volume["restore"]
    if restore["state"] != "in_progress" or not restore["started"]:
        return
    elapsed = now - restore["started"]
    if restore["fail"] and elapsed >= restore["duration"] * 0.5:
        _finish_restore(emu, volume, now, error=restore["fail"])
    elif elapsed >= restore["duration"]:
        backup = emu.store.get("backups", restore["backup"])
        source = backups.content_dir(emu, backup) if backup else None
        util.copy_dir(source or emu.dir / "nonexistent", emu.volume_dir(volume["name"]))
        _finish_restore(emu, volume, now)


def _finish_restore(emu, volume: dict, now: float, error: str = "") -> None:
    at = util.rfc3339(now)
    with emu.store.lock:
        current = emu.store.get("volumes", volume["name"])
        if current is None or current["deleting"]:
            return
        restore = current["restore"]
        tickets = {k: v for k, v in current["tickets"].items() if k != RESTORE_TICKET}
        if error:
            changes = {
                "faulted": True,
                "restore": {**restore, "state": "error", "error": error,
                            "progress": min(99, int((now - restore["started"]) / restore["duration"] * 100))},
                "conditions": {**current["conditions"], "Restore": condition(
                    "Restore", "False", at, "RestoreFailure", error)},
            }
        else:
            changes = {
                "restoreRequired": False, "lastRestoredBackup": restore["backup"],
                "restore": {**restore, "state": "complete"},
                "conditions": {**current["conditions"], "Restore": condition("Restore", "False", at)},
            }
        emu.store.update("volumes", volume["name"], tickets=tickets, **changes)


# Expansion ------------------------------------------------------------------------
def expand(emu, ctx: Ctx, request, name: str):
    """`expand` {"size"} (api/volume.go VolumeExpand, manager/volume.go Expand): detached or
    attached volumes only; the size is rounded up to 2 MiB; a size not larger is ignored."""
    body = decode(request.get_data(), "ExpandInput")
    try:
        size = util.parse_quantity(body["size"])
    except ValueError as exc:
        raise ApiError(f"failed to parse size {exc}") from None
    prefix = f"unable to expand volume {name}"
    with emu.store.lock:
        volume = emu.store.get("volumes", name)
        if volume is None:
            raise not_found("volume.longhorn.io", name).wrap("failed to get volume")
        if volume["standby"]:
            raise ApiError(f"failed to manually expand standby volume {name}")
        if volume["state"] not in ("detached", "attached"):
            raise ApiError(f"{prefix}: invalid volume state to expand: {volume['state']}")
        size = util.round_up_size(size)
        if volume["size"] >= size:
            return respond(emu, ctx, name)
        status = volume["kubernetesStatus"]
        claim = (status["namespace"], status["pvcName"]) if status["pvcName"] and not status["lastPVCRefAt"] else None
        emu.store.update("volumes", name, size=size)
    if claim and emu.kube:  # Longhorn grows the bound PVC's request first (its CSI resizer follows)
        emu.kube.grow_claim(*claim, size)
    return respond(emu, ctx, name)
