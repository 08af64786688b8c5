"""Longhorn's CustomResourceDefinitions as the sandbox registers them.

Written from the facts of longhorn-manager's `k8s/crds.yaml` (v1.7.2, v1.8.1):
group `longhorn.io`, served version `v1beta2` (the storage version from 1.3 on;
`v1beta1` is still served up to 1.9 but only through Longhorn's conversion
webhook, which the sandbox does not run), namespaced, short names `lhv`,
`lhb`, `lhbv`, `lhs`. Backup and BackupVolume list their fields as Longhorn
does; Volume and Snapshot list the fields a backup tool reads and keep the
rest (Longhorn's own Volume CRD has dozens more) through
`x-kubernetes-preserve-unknown-fields`.

Deliberate differences: no `status` subresource, so the emulator writes an
object (spec and status) in one request; and one schema for every emulated
version (1.8's, which adds fields to 1.7's), so emulators of both versions can
share one API server without rewriting each other's CRDs.
"""

from __future__ import annotations

GROUP = "longhorn.io"
VERSION = "v1beta2"
NAMESPACE = "longhorn-system"

# `nullable` on strings works around the sandbox's kube-apiserver build, whose schema validation
# sees an empty string as null ("must be of type string"); values are stored as sent.
STRING = {"type": "string", "nullable": True}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
TIME = {"type": "string", "format": "date-time", "nullable": True}
STRING_MAP = {"type": "object", "additionalProperties": STRING, "nullable": True}
OPEN = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}


def _object(properties: dict, open_: bool = False) -> dict:
    schema = {"type": "object", "properties": properties}
    if open_:
        schema["x-kubernetes-preserve-unknown-fields"] = True
    return schema


def _crd(kind: str, plural: str, short: str, spec: dict, status: dict, columns: list[tuple]) -> dict:
    return {
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"longhorn-manager": ""}},
        "spec": {
            "group": GROUP, "scope": "Namespaced",
            "names": {"kind": kind, "listKind": f"{kind}List", "plural": plural, "singular": kind.lower(),
                      "shortNames": [short]},
            "versions": [{
                "name": VERSION, "served": True, "storage": True,
                "additionalPrinterColumns": [{"name": n, "type": t, "jsonPath": p} for n, t, p in columns],
                "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                    "apiVersion": {"type": "string"}, "kind": {"type": "string"}, "metadata": {"type": "object"},
                    "spec": spec, "status": status}}},
            }],
        },
    }


def _backup(v18: bool) -> dict:
    spec = _object({"snapshotName": STRING, "labels": STRING_MAP, "syncRequestedAt": TIME,
                    "backupMode": {"type": "string", "nullable": True,
                                   "enum": ["full", "incremental", ""]}})
    status = {name: STRING for name in (
        "ownerID", "state", "url", "snapshotName", "snapshotCreatedAt", "backupCreatedAt", "size", "error",
        "volumeName", "volumeSize", "volumeCreated", "volumeBackingImageName", "compressionMethod",
        "replicaAddress", "newlyUploadDataSize", "reUploadedDataSize")}
    status.update(progress=INT, labels=STRING_MAP, messages=STRING_MAP, lastSyncedAt=TIME)
    if v18:
        status["backupTargetName"] = STRING
    columns = [("SnapshotName", "string", ".status.snapshotName"), ("SnapshotSize", "string", ".status.size"),
               ("SnapshotCreatedAt", "string", ".status.snapshotCreatedAt")]
    if v18:
        columns.append(("BackupTarget", "string", ".status.backupTargetName"))
    columns += [("State", "string", ".status.state"), ("LastSyncedAt", "string", ".status.lastSyncedAt")]
    return _crd("Backup", "backups", "lhb", spec, _object(status), columns)


def _backup_volume(v18: bool) -> dict:
    spec = {"syncRequestedAt": TIME}
    if v18:
        spec.update(backupTargetName=STRING, volumeName=STRING)
    status = {name: STRING for name in (
        "ownerID", "size", "createdAt", "lastBackupName", "lastBackupAt", "dataStored", "backingImageName",
        "backingImageChecksum", "storageClassName")}
    status.update(labels=STRING_MAP, messages=STRING_MAP, lastModificationTime=TIME, lastSyncedAt=TIME)
    columns = [("CreatedAt", "string", ".status.createdAt"), ("LastBackupName", "string", ".status.lastBackupName"),
               ("LastBackupAt", "string", ".status.lastBackupAt"), ("LastSyncedAt", "string", ".status.lastSyncedAt")]
    if v18:
        columns.insert(0, ("BackupTarget", "string", ".spec.backupTargetName"))
    return _crd("BackupVolume", "backupvolumes", "lhbv", _object(spec), _object(status), columns)


def _volume(v18: bool) -> dict:
    spec = {"size": STRING, "frontend": STRING, "fromBackup": STRING, "numberOfReplicas": INT,
            "dataLocality": STRING, "accessMode": STRING, "staleReplicaTimeout": INT, "dataEngine": STRING,
            "image": STRING, "snapshotMaxCount": INT, "snapshotMaxSize": STRING, "Standby": BOOL,
            "encrypted": BOOL, "migratable": BOOL, "nodeID": STRING, "backupCompressionMethod": STRING}
    if v18:
        spec["backupTargetName"] = STRING
    status = {"state": STRING, "robustness": STRING, "currentNodeID": STRING, "currentImage": STRING,
              "ownerID": STRING, "kubernetesStatus": OPEN, "conditions": {"type": "array", "items": OPEN,
                                                                            "nullable": True},
              "lastBackup": STRING, "lastBackupAt": STRING, "restoreRequired": BOOL, "restoreInitiated": BOOL,
              "isStandby": BOOL, "actualSize": INT, "frontendDisabled": BOOL, "expansionRequired": BOOL}
    columns = [("Data Engine", "string", ".spec.dataEngine"), ("State", "string", ".status.state"),
               ("Robustness", "string", ".status.robustness"), ("Size", "string", ".spec.size"),
               ("Node", "string", ".status.currentNodeID"), ("Age", "date", ".metadata.creationTimestamp")]
    return _crd("Volume", "volumes", "lhv", _object(spec, open_=True), _object(status, open_=True), columns)


def _snapshot() -> dict:
    spec = _object({"volume": STRING, "createSnapshot": BOOL, "labels": STRING_MAP})
    status = _object({"parent": STRING, "children": {"type": "object", "additionalProperties": BOOL,
                                                     "nullable": True},
                      "markRemoved": BOOL, "userCreated": BOOL, "creationTime": STRING, "size": INT,
                      "labels": STRING_MAP, "ownerID": STRING, "error": STRING, "restoreSize": INT,
                      "readyToUse": BOOL, "checksum": STRING}, open_=True)
    columns = [("Volume", "string", ".spec.volume"), ("CreationTime", "string", ".status.creationTime"),
               ("ReadyToUse", "boolean", ".status.readyToUse"), ("RestoreSize", "string", ".status.restoreSize"),
               ("Size", "string", ".status.size"), ("Age", "date", ".metadata.creationTimestamp")]
    return _crd("Snapshot", "snapshots", "lhs", spec, status, columns)


def definitions(v18: bool = True) -> list[dict]:
    return [_volume(v18), _backup(v18), _backup_volume(v18), _snapshot()]
