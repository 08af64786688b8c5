"""Request bodies decoded the way the manager's Go `encoding/json` decoder does.

The manager decodes each action's body into a Go struct: unknown fields are
ignored, field names match case-insensitively, `null` leaves a field at its
zero value, only the first JSON value of the body is read, and a value of the
wrong JSON type is an error naming the struct field. Those errors become 500s.
"""

from __future__ import annotations

import json

from .api import ApiError

S, I, B = "string", "int", "bool"  # noqa: E741 - Go type names, as in the manager's schema
LABELS = "map[string]string"
STRINGS = "[]string"

_RESOURCE = {"id": S, "type": S, "links": LABELS, "actions": LABELS}

# Input types (Go struct name -> JSON field -> Go type).
STRUCTS: dict[str, dict[str, str]] = {
    "Volume": {
        **_RESOURCE,
        "name": S, "size": S, "frontend": S, "disableFrontend": B, "fromBackup": S,
        "restoreVolumeRecurringJob": S, "dataSource": S, "dataLocality": S, "staleReplicaTimeout": I,
        "state": S, "robustness": S, "image": S, "currentImage": S, "backingImage": S, "created": S,
        "lastBackup": S, "lastBackupAt": S, "lastAttachedBy": S, "standby": B, "restoreRequired": B,
        "restoreInitiated": B, "revisionCounterDisabled": B, "snapshotDataIntegrity": S,
        "unmapMarkSnapChainRemoved": S, "backupCompressionMethod": S, "replicaSoftAntiAffinity": S,
        "replicaZoneSoftAntiAffinity": S, "replicaDiskSoftAntiAffinity": S, "dataEngine": S,
        "snapshotMaxCount": I, "snapshotMaxSize": S, "freezeFilesystemForSnapshot": S,
        "backupTargetName": S, "diskSelector": STRINGS, "nodeSelector": STRINGS, "numberOfReplicas": I,
        "replicaAutoBalance": S, "ready": B, "accessMode": S, "shareEndpoint": S, "shareState": S,
        "migratable": B, "encrypted": B, "conditions": "map[string]longhorn.Condition",
        "kubernetesStatus": "longhorn.KubernetesStatus", "cloneStatus": "longhorn.VolumeCloneStatus",
        "replicas": "[]api.Replica", "controllers": "[]api.Controller", "backupStatus": "[]api.BackupStatus",
        "restoreStatus": "[]api.RestoreStatus", "purgeStatus": "[]api.PurgeStatus",
        "rebuildStatus": "[]api.RebuildStatus", "volumeAttachment": "api.VolumeAttachment",
    },
    "SnapshotInput": {"name": S, "labels": LABELS, "backupMode": S},
    "SnapshotCRInput": {"name": S, "labels": LABELS},
    "BackupInput": {"name": S},
    "ExpandInput": {"size": S},
    "PVCreateInput": {"pvName": S, "fsType": S, "secretName": S, "secretNamespace": S, "storageClassName": S},
    "PVCCreateInput": {"namespace": S, "pvcName": S},
    "AttachInput": {"hostId": S, "disableFrontend": B, "attachedBy": S, "attacherType": S, "attachmentID": S},
    "DetachInput": {"attachmentID": S, "hostId": S, "forceDetach": B},
    "SyncBackupResource": {"syncAllBackupTargets": B, "syncBackupTarget": B, "syncAllBackupVolumes": B,
                           "syncBackupVolume": B},
}


def _kind(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _type_error(struct: str, field: str, go_type: str, value) -> ApiError:
    kind = _kind(value)
    if kind == "number" and go_type == I:
        kind = f"number {json.dumps(value)}"
    return ApiError(f"json: cannot unmarshal {kind} into Go struct field {struct}.{field} of type {go_type}")


def _check(struct: str, field: str, go_type: str, value) -> None:
    if value is None:
        return
    ok = {
        S: lambda v: isinstance(v, str),
        I: lambda v: isinstance(v, int) and not isinstance(v, bool),
        B: lambda v: isinstance(v, bool),
    }.get(go_type)
    if ok is not None:
        if not ok(value):
            raise _type_error(struct, field, go_type, value)
        return
    if go_type.startswith("[]"):
        if not isinstance(value, list):
            raise _type_error(struct, field, go_type, value)
        if go_type == STRINGS:
            for item in value:
                _check(struct, field, S, item)
        return
    if not isinstance(value, dict):
        raise _type_error(struct, field, go_type, value)
    if go_type == LABELS:
        for item in value.values():
            _check(struct, field, S, item)


def _parse(body: bytes):
    text = body.decode("utf-8", errors="replace").lstrip(" \t\r\n")
    if not text:
        raise ApiError("EOF")
    try:
        value, _ = json.JSONDecoder().raw_decode(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text):
            raise ApiError("unexpected EOF") from None
        raise ApiError(f"invalid character {text[exc.pos]!r} looking for beginning of value") from None
    return value


def decode(body: bytes, struct: str) -> dict:
    """The fields of `struct` found in body, with Go's zero values for the rest."""
    fields = STRUCTS[struct]
    value = _parse(body)
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ApiError(f"json: cannot unmarshal {_kind(value)} into Go value of type api.{struct}")
    by_lower = {name.lower(): name for name in fields}
    result: dict = {}
    for key, item in value.items():
        name = key if key in fields else by_lower.get(key.lower())
        if name is None:
            continue
        _check(struct, name, fields[name], item)
        if item is not None:
            result[name] = item
    for name, go_type in fields.items():
        result.setdefault(name, {S: "", I: 0, B: False}.get(go_type))
    return result
