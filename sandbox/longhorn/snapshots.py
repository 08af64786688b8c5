"""Snapshot actions on a volume, and snapshotBackup.

A snapshot copies the volume's directory to DIR/snapshots/<volume>/<name>/ at
the moment it is taken; a backup of it later uploads exactly those bytes.
Snapshot CRs (snapshotCR*) work on any volume and become readyToUse after one
step; the legacy engine calls (snapshotCreate/List/Get/Delete) need a running
engine, i.e. an attached volume, as in Longhorn. Both share one table, like
Longhorn's Snapshot CRs, which also mirror snapshots taken through the engine.
"""

from __future__ import annotations

import uuid

from . import backups, util
from .api import ApiError, Ctx, json_response, not_found
from .constants import NODE
from .inputs import decode
from .volume_view import engine_running, render_volume, replica_names, volume_or_404

VALIDATOR = 'admission webhook "validator.longhorn.io" denied the request: '


def _chain(emu, volume: str) -> dict[str, tuple[str, dict]]:
    """name -> (parent, children) for the volume's snapshots, oldest first; the head hangs off the last."""
    ordered = sorted(emu.store.records_for_volume("snapshots", volume), key=lambda s: (s["createdAt"], s["name"]))
    chain = {}
    for index, snap in enumerate(ordered):
        parent = ordered[index - 1]["name"] if index else ""
        child = ordered[index + 1]["name"] if index + 1 < len(ordered) else "volume-head"
        chain[snap["name"]] = (parent, {child: True})
    chain["volume-head"] = (ordered[-1]["name"] if ordered else "", {})
    return chain


def attach_error(volume: str) -> str:
    """The snapshot controller's message while the engine of a detached volume starts."""
    return (f"failed to take snapshot because the volume engine {volume}-e-0 is not running. "
            "Waiting for the volume to be attached")


def limit_error(usage: int, limit: int) -> str:
    """The engine's refusal past snapshot-max-count, as it reaches the manager through the proxy."""
    return (f"proxyServer=127.0.0.1:8501 destination=127.0.0.1:10000: failed to snapshot volume: rpc error: "
            f"code = Unknown desc = snapshot count usage {usage} is equal or larger than snapshotMaxCount {limit}")


def cr_fields(emu, snap: dict, now: float) -> dict:
    """A Snapshot CR's fields at time `now` (the REST snapshotCR and the CR's status)."""
    refused = snap.get("refused") or ""
    ready = snap["readyAt"] <= now and not refused
    parent, children = _chain(emu, snap["volume"]).get(snap["name"], ("", {})) if ready else ("", None)
    volume = emu.store.get("volumes", snap["volume"])
    error = refused or (attach_error(snap["volume"]) if now < snap.get("attachUntil", 0) else "")
    return {
        "name": snap["name"], "crCreationTime": snap["crCreationTime"], "volume": snap["volume"],
        "createSnapshot": True, "parent": parent, "children": children, "markRemoved": snap["markRemoved"],
        "userCreated": True, "creationTime": snap["creationTime"] if ready else "",
        "size": snap["size"] if ready else 0, "labels": snap["labels"], "ownerID": NODE,
        "restoreSize": volume["size"] if volume else 0, "readyToUse": ready and not snap["markRemoved"],
        "checksum": "", "error": error,
    }


def _render_cr(emu, ctx: Ctx, snap: dict, now: float) -> dict:
    return ctx.resource("snapshotCR", snap["name"], cr_fields(emu, snap, now))


def usage(emu, volume: str) -> int:
    """Snapshots the engine counts against snapshot-max-count: taken and not removed."""
    return sum(1 for s in emu.store.records_for_volume("snapshots", volume)
               if not s["markRemoved"] and not s.get("refused"))


def _render_engine_snapshot(emu, ctx: Ctx, snap: dict) -> dict:
    parent, children = _chain(emu, snap["volume"])[snap["name"]]
    fields = {"name": snap["name"], "parent": parent, "children": children, "removed": snap["markRemoved"],
              "usercreated": True, "created": snap["creationTime"], "size": str(snap["size"]),
              "labels": snap["labels"], "checksum": ""}
    return ctx.resource("snapshot", snap["name"], fields)


def _take(emu, volume: dict, name: str, labels: dict, ready_after: float, attach: bool = False,
          refuse: bool = False) -> dict:
    """Copy the volume's files into a new snapshot.

    `attach`: the volume is detached, so the snapshot controller attaches it first and the
    snapshot reports the attach error meanwhile. `refuse`: past the limit, the engine refuses
    (raises for the engine call; the CR keeps the error)."""
    if emu.store.get("snapshots", name) is not None:
        raise ApiError(f'snapshots.longhorn.io "{name}" already exists')
    limit = emu.snapshot_max_count(volume)
    count = usage(emu, volume["name"])
    refused = limit_error(count, limit) if count >= limit else ""
    if refused and refuse:
        raise ApiError(refused)
    now = util.now()
    attach_until = now + emu.attach_seconds if attach and not refused else 0.0
    target = emu.snapshot_dir(volume["name"], name)
    if not refused:
        util.copy_dir(emu.volume_dir(volume["name"]), target)
    snap = {"name": name, "volume": volume["name"], "createdAt": now, "creationTime": util.rfc3339(now),
            "crCreationTime": util.rfc3339(now), "labels": labels, "size": 0 if refused else util.dir_size(target),
            "readyAt": max(now + ready_after, attach_until + ready_after if attach_until else 0.0),
            "markRemoved": False, "refused": refused, "attachUntil": attach_until, "ticket": bool(attach_until)}
    with emu.store.lock:
        if emu.store.get("snapshots", name) is not None:
            raise ApiError(f'snapshots.longhorn.io "{name}" already exists')
        emu.store.put("snapshots", name, snap)
        if attach_until:
            emu.active_snapshots.add(name)
    if attach_until:
        emu.set_ticket(volume["name"], ticket_id(name), {"type": "snapshot-controller", "parameters": {}})
    return snap


def ticket_id(snapshot: str) -> str:
    return f"snapshot-controller-{snapshot}"


def advance(emu, now: float) -> None:
    """Release the attachment a snapshot of a detached volume asked for once it is taken."""
    for name in list(emu.active_snapshots):
        snap = emu.store.get("snapshots", name)
        if snap is None or not snap.get("ticket"):
            emu.active_snapshots.discard(name)
        elif snap["readyAt"] <= now:
            emu.store.update("snapshots", name, ticket=False)
            emu.set_ticket(snap["volume"], ticket_id(name), None)
            emu.active_snapshots.discard(name)


def delete(emu, snap_name: str) -> dict | None:
    """Remove a snapshot (its CR, its files, the attachment it held)."""
    with emu.store.lock:
        snap = emu.store.delete("snapshots", snap_name)
    if snap is not None:
        emu.remove_dir(emu.snapshot_dir(snap["volume"], snap["name"]))
        if snap.get("ticket"):
            emu.set_ticket(snap["volume"], ticket_id(snap_name), None)
            emu.active_snapshots.discard(snap_name)
    return snap


def _running_volume(emu, name: str) -> dict:
    volume = volume_or_404(emu, name)
    if not engine_running(volume):
        raise ApiError(f"cannot get client for volume {name} on node {NODE}: engine is not running")
    return volume


# Snapshot CRs -------------------------------------------------------------------
def cr_create(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "SnapshotCRInput")
        volume = volume_or_404(emu, name)
        snapshot = body["name"] or util.generate_name("snap")
        # A Snapshot CR is a Kubernetes object: the API server refuses a name that is not a DNS-1123
        # subdomain (the manager checks nothing more; docs/longhorn.md, "Names").
        invalid = util.dns1123_subdomain_error(snapshot)
        if invalid:
            raise ApiError(f'Snapshot.longhorn.io "{snapshot}" is invalid: metadata.name: Invalid value: '
                           f'"{snapshot}": {invalid}')
        snap = _take(emu, volume, snapshot, body["labels"] or {}, emu.step, attach=not engine_running(volume))
    except ApiError as exc:
        raise exc.wrap("failed to create snapshot CR") from None
    return json_response(ctx, _render_cr(emu, ctx, snap, util.now()))


def cr_get(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "SnapshotCRInput")
        snap = emu.store.get("snapshots", body["name"])
        if snap is None:
            raise not_found("snapshot.longhorn.io", body["name"])
    except ApiError as exc:
        raise exc.wrap("failed to get snapshot CR") from None
    return json_response(ctx, _render_cr(emu, ctx, snap, util.now()))


def cr_list(emu, ctx: Ctx, request, name: str):
    now = util.now()
    snaps = sorted(emu.store.records_for_volume("snapshots", name), key=lambda s: s["name"])
    return json_response(ctx, ctx.collection("snapshotCR", [_render_cr(emu, ctx, s, now) for s in snaps]))


def cr_delete(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "SnapshotCRInput")
        volume_or_404(emu, name)
    except ApiError as exc:
        raise exc.wrap("failed to delete snapshot CR") from None
    delete(emu, body["name"])
    empty = {"type": "empty", "links": {"self": ctx.request_url}, "actions": {}}
    return json_response(ctx, empty)


# Engine snapshots (attached volumes only) ---------------------------------------------
def engine_create(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "SnapshotInput")
        volume = _running_volume(emu, name)
        labels = body["labels"] or {}
        if any("=" in key or "=" in value for key, value in labels.items()):
            raise ApiError("labels cannot contain '='")
        snap = _take(emu, volume, body["name"] or str(uuid.uuid4()), labels, 0.0, refuse=True)
    except ApiError as exc:
        raise exc.wrap("failed to create snapshot") from None
    return json_response(ctx, _render_engine_snapshot(emu, ctx, snap))


def engine_list(emu, ctx: Ctx, request, name: str):
    try:
        _running_volume(emu, name)
    except ApiError as exc:
        raise exc.wrap("failed to list snapshot") from None
    snaps = emu.store.records_for_volume("snapshots", name)
    data = [_render_engine_snapshot(emu, ctx, s) for s in sorted(snaps, key=lambda s: s["name"])]
    parent = _chain(emu, name)["volume-head"][0]
    head = {"name": "volume-head", "parent": parent, "children": {}, "removed": False, "usercreated": False,
            "created": util.rfc3339(util.now()), "size": "0", "labels": {}, "checksum": ""}
    data.append(ctx.resource("snapshot", "volume-head", head))
    return json_response(ctx, ctx.collection("snapshot", data))


def engine_get(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "SnapshotInput")
        if not body["name"]:
            raise ApiError("volume and snapshot name required")
        _running_volume(emu, name)
        snap = emu.store.get("snapshots", body["name"])
        if snap is None or snap["volume"] != name:
            raise ApiError(f"cannot find snapshot '{body['name']}' for volume '{name}'")
    except ApiError as exc:
        raise exc.wrap("failed to get snapshot") from None
    return json_response(ctx, _render_engine_snapshot(emu, ctx, snap))


def engine_delete(emu, ctx: Ctx, request, name: str):
    """Marks the snapshot removed (its data stays until a purge, as in Longhorn)."""
    try:
        body = decode(request.get_data(), "SnapshotInput")
        if not body["name"]:
            raise ApiError("volume and snapshot name required")
        _running_volume(emu, name)
        if emu.store.update("snapshots", body["name"], markRemoved=True) is None:
            raise ApiError(f"cannot find snapshot '{body['name']}' for volume '{name}'")
    except ApiError as exc:
        raise exc.wrap("failed to delete snapshot") from None
    return json_response(ctx, render_volume(emu, ctx, emu.store.get("volumes", name), util.now()))


# Backup ---------------------------------------------------------------------------
def backup(emu, ctx: Ctx, request, name: str, fault=None):
    """snapshotBackup: start a backup of a snapshot; the answer is the volume."""
    try:
        body = decode(request.get_data(), "SnapshotInput")
        volume = volume_or_404(emu, name)
        labels = backups.validate_labels(body["labels"] or {})
        if any(volume["kubernetesStatus"].get(key) for key in backups.KUBE_STATUS_KEYS):
            labels["KubernetesStatus"] = backups.go_json_kube_status(volume["kubernetesStatus"])
        if not body["name"]:
            raise ApiError("volume and snapshot name required")
        labels.setdefault(backups.ACCESS_MODE_LABEL, volume["accessMode"] or "rwo")
        mode = body["backupMode"] or "incremental"
        if mode not in ("full", "incremental"):
            raise ApiError(VALIDATOR + f"BackupMode {mode} is not a valid option")
    except ApiError as exc:
        raise exc.wrap("failed to backup snapshot") from None
    now = util.now()
    replicas = replica_names(volume)
    record = backups.new_record(
        emu, util.generate_name("backup"), name, specLabels=labels, backupMode=mode, snapshot=body["name"],
        volumeSize=str(volume["size"]), compressionMethod=volume["backupCompressionMethod"],
        replica=replicas[0] if replicas else "", storageClassName=_storage_class(emu, volume),
        op={"started": now, "duration": emu.op_seconds,
            "fail": fault.message if fault is not None and fault.mode in ("fail_async", "unknown_async") else None,
            "final": "Unknown" if fault is not None and fault.mode == "unknown_async" else None})
    record.update(backups.snapshot_gate(emu, record, now))
    with emu.store.lock:
        emu.store.put("backups", record["name"], record)
        emu.active_backups.add(record["name"])
    emu.set_ticket(name, backups.ticket_id(record["name"]), {"type": "backup-controller", "parameters": {}})
    return json_response(ctx, render_volume(emu, ctx, emu.store.get("volumes", name), util.now()))


def _storage_class(emu, volume: dict) -> str:
    """The storage class of the volume's bound PVC, which Longhorn records on the backup volume."""
    status = volume["kubernetesStatus"]
    if emu.kube and status["pvcName"] and not status["lastPVCRefAt"]:
        return emu.kube.storage_class_of(status["namespace"], status["pvcName"])
    return ""
