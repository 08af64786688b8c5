"""The Longhorn manager's REST API (`/v1`), over requests.

One session with `Accept: application/json`, explicit timeouts, and retries
only for idempotent reads (GETs and the read-only actions such as
`backupList`). Longhorn answers most failures with 500 and an error body
`{"type": "error", "message": ...}`; those become Soteria's errors with
Longhorn's message. Facts: docs/longhorn.md and the Longhorn reference.
"""

from __future__ import annotations

import functools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import requests
from django.conf import settings

from soteria_site.core.errors import NotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from soteria_site.core.metrics import UPSTREAM_REQUESTS
from soteria_site.core.timeparse import parse_time

log = logging.getLogger(__name__)
SYSTEM = "longhorn"
READ_RETRIES = 2


# --- Plain data -------------------------------------------------------------
@dataclass(frozen=True)
class BackupStatus:
    """One entry of a volume's `backupStatus[]`: a backup as the volume sees it."""

    name: str
    snapshot: str
    state: str
    progress: int
    url: str
    error: str
    size: str


@dataclass(frozen=True)
class Volume:
    name: str
    size: str
    state: str
    robustness: str
    ready: bool
    created: datetime | None
    pv_name: str
    pvc_name: str
    pvc_namespace: str
    last_backup: str
    last_backup_at: datetime | None
    backups: tuple[BackupStatus, ...]
    restore_required: bool
    restore_initiated: bool
    restore_error: str = ""
    restore_progress: int | None = None
    conditions: dict[str, dict] = field(default_factory=dict)
    number_of_replicas: int = 3
    access_mode: str = "rwo"
    stale_replica_timeout: int = 30
    data_engine: str = "v1"
    from_backup: str = ""
    # The backup target this volume backs up to (`backupTargetName`, 1.8+; "" before).
    backup_target: str = ""
    # Read for the inventory (longhorn_crd.list_volumes(completed_time=...)): Completed backups
    # are counted, not kept; `backups` then holds only the others. None: `backups` holds all.
    completed_backups: int | None = None
    last_completed_at: datetime | None = None


@dataclass(frozen=True)
class BackupVolume:
    name: str
    volume_name: str
    size: str
    last_backup_name: str
    last_backup_at: datetime | None
    created: datetime | None
    storage_class: str
    # The backup target this backup volume lives on (`backupTargetName`, 1.8+; "" before).
    backup_target: str = ""


@dataclass(frozen=True)
class Backup:
    name: str
    volume_name: str
    snapshot_name: str
    state: str
    progress: int
    url: str
    error: str
    size: str
    created: datetime | None
    snapshot_created: datetime | None
    labels: dict[str, str]
    backup_mode: str
    # Size of the volume when it was backed up (`volumeSize`, bytes): a volume restored from
    # this backup gets this size whatever size the request asked for.
    volume_size: str = ""


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _volume(obj: dict) -> Volume:
    kube = obj.get("kubernetesStatus") or {}
    restores = obj.get("restoreStatus") or []
    restore_errors = [r.get("error") for r in restores if r.get("error")]
    conditions = obj.get("conditions") if isinstance(obj.get("conditions"), dict) else {}
    restore_condition = conditions.get("Restore") or {}
    if not restore_errors and restore_condition.get("reason") == "RestoreFailure":
        # restoreStatus[] may be gone (its replicas stopped); the Restore condition keeps the reason.
        restore_errors = [restore_condition.get("message") or "restore failed"]
    progress = [_int(r.get("progress")) for r in restores if r.get("isRestoring") or r.get("progress")]
    return Volume(
        name=obj.get("name") or obj.get("id", ""),
        size=str(obj.get("size", "")),
        state=obj.get("state", ""),
        robustness=obj.get("robustness", ""),
        ready=bool(obj.get("ready")),
        created=parse_time(obj.get("created")),
        pv_name=kube.get("pvName", ""),
        pvc_name=kube.get("pvcName", ""),
        pvc_namespace=kube.get("namespace", ""),
        last_backup=obj.get("lastBackup", ""),
        last_backup_at=parse_time(obj.get("lastBackupAt")),
        backups=tuple(
            BackupStatus(
                name=b.get("id", ""),
                snapshot=b.get("snapshot", ""),
                state=b.get("state", ""),
                progress=_int(b.get("progress")),
                url=b.get("backupURL", ""),
                error=b.get("error", ""),
                size=str(b.get("size", "")),
            )
            for b in obj.get("backupStatus") or []
        ),
        restore_required=bool(obj.get("restoreRequired")),
        restore_initiated=bool(obj.get("restoreInitiated")),
        restore_error="; ".join(restore_errors),
        restore_progress=min(progress) if progress else None,
        conditions=obj.get("conditions") or {},
        number_of_replicas=_int(obj.get("numberOfReplicas")) or 3,
        access_mode=obj.get("accessMode") or "rwo",
        stale_replica_timeout=_int(obj.get("staleReplicaTimeout")) or 30,
        data_engine=obj.get("dataEngine") or "v1",
        from_backup=obj.get("fromBackup") or "",
        backup_target=obj.get("backupTargetName") or "",
    )


def _backup_volume(obj: dict) -> BackupVolume:
    return BackupVolume(
        name=obj.get("name") or obj.get("id", ""),
        # volumeName exists from 1.8; before, the backup volume is named after the volume.
        volume_name=obj.get("volumeName") or obj.get("name") or obj.get("id", ""),
        size=str(obj.get("size", "")),
        last_backup_name=obj.get("lastBackupName", ""),
        last_backup_at=parse_time(obj.get("lastBackupAt")),
        created=parse_time(obj.get("created")),
        storage_class=obj.get("storageClassName", ""),
        backup_target=obj.get("backupTargetName") or "",
    )


def _backup(obj: dict) -> Backup:
    return Backup(
        name=obj.get("name") or obj.get("id", ""),
        volume_name=obj.get("volumeName", ""),
        snapshot_name=obj.get("snapshotName", ""),
        state=obj.get("state", ""),
        progress=_int(obj.get("progress")),
        url=obj.get("url", ""),
        error=obj.get("error", ""),
        size=str(obj.get("size", "")),
        created=parse_time(obj.get("created")),
        snapshot_created=parse_time(obj.get("snapshotCreated")),
        labels=obj.get("labels") or {},
        backup_mode=obj.get("backupMode", ""),
        volume_size=str(obj.get("volumeSize") or ""),
    )


# --- Transport --------------------------------------------------------------
@functools.cache
def _session() -> requests.Session:
    session = requests.Session()
    # Ignore REQUESTS_CA_BUNDLE, proxies and .netrc from the environment: the
    # manager is an in-cluster Service, and `verify` must mean what we pass.
    session.trust_env = False
    session.headers.update({"Accept": "application/json", "User-Agent": "soteria"})
    adapter = requests.adapters.HTTPAdapter(pool_connections=4, pool_maxsize=16, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def reset() -> None:
    _session.cache_clear()


def _request(operation: str, method: str, path: str, *, params: dict | None = None, body: Any = None,
             idempotent: bool, timeout: float | None = None) -> Any:
    """One call with retries for idempotent ones. Returns parsed JSON, or None for an empty body."""
    url = settings.SOTERIA_LONGHORN_URL + path
    total = timeout if timeout is not None else settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS
    attempts = 1 + (READ_RETRIES if idempotent else 0)
    for attempt in range(1, attempts + 1):
        try:
            response = _session().request(method, url, params=params, json=body,
                                          timeout=(min(total, 5.0), total), verify=True)
        except requests.Timeout:
            outcome, error = "timeout", UpstreamTimeout(SYSTEM, f"Longhorn did not answer {operation} in time")
        except requests.RequestException as exc:
            outcome, error = "unreachable", UpstreamUnavailable(
                SYSTEM, f"Longhorn manager at {settings.SOTERIA_LONGHORN_URL} is unreachable: {_reason(exc)}")
        else:
            if response.status_code in (502, 503, 504) and attempt < attempts:
                UPSTREAM_REQUESTS.labels(SYSTEM, operation, f"http_{response.status_code}").inc()
                time.sleep(0.2 * attempt)
                continue
            UPSTREAM_REQUESTS.labels(SYSTEM, operation,
                                     "ok" if response.ok else f"http_{response.status_code}").inc()
            return _answer(operation, response)
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, outcome).inc()
        if attempt >= attempts:
            raise error
        time.sleep(0.2 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _reason(exc: requests.RequestException) -> str:
    text = str(exc)
    for needle, reason in (("Connection refused", "connection refused"),
                           ("Name or service not known", "host name does not resolve"),
                           ("Failed to resolve", "host name does not resolve"),
                           ("No route to host", "no route to host")):
        if needle in text:
            return reason
    return text if len(text) < 200 else text[:200] + "..."


def _answer(operation: str, response: requests.Response) -> Any:
    if response.ok:
        if not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(SYSTEM, f"Longhorn answered {operation} with something that is not JSON",
                                upstream_status=response.status_code) from None
    message = _error_message(response)
    if response.status_code == 404:
        raise NotFound(message or f"Longhorn: {operation}: not found")
    if response.status_code == 503:
        raise UpstreamUnavailable(SYSTEM, f"Longhorn is unavailable: {message}")
    if response.status_code == 504:
        raise UpstreamTimeout(SYSTEM, f"Longhorn timed out on {operation}: {message}")
    raise UpstreamError(SYSTEM, f"Longhorn failed {operation}: {message or response.reason}",
                        upstream_status=response.status_code)


def _error_message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500]
    if isinstance(body, dict):
        return str(body.get("message") or body.get("detail") or body.get("code") or "")
    return ""


def _get(operation: str, path: str, timeout: float | None = None, retry: bool = True) -> Any:
    return _request(operation, "GET", path, idempotent=retry, timeout=timeout)


def _action(operation: str, path: str, action: str, body: dict, *, idempotent: bool) -> Any:
    return _request(operation, "POST", path, params={"action": action}, body=body, idempotent=idempotent)


def _data(collection: Any) -> list[dict]:
    if not isinstance(collection, dict) or not isinstance(collection.get("data"), list):
        raise UpstreamError(SYSTEM, "Longhorn answered a list with something that is not a collection")
    return collection["data"]


# --- Operations ---------------------------------------------------------------
def ping(timeout: float | None = None) -> None:
    """Raise unless the manager answers GET /v1 (one attempt: readiness must be quick)."""
    _get("ping", "/v1", timeout=timeout, retry=False)


def list_volumes() -> list[Volume]:
    return [_volume(v) for v in _data(_get("volumes.list", "/v1/volumes"))]


def get_volume(name: str) -> Volume | None:
    """The volume, or None when Longhorn has no volume of that name."""
    try:
        data = _get("volumes.get", f"/v1/volumes/{name}")
    except NotFound:
        return None
    if data is None:  # 200 with an empty body never happens, but be explicit
        return None
    return _volume(data)


def list_backup_volumes() -> list[BackupVolume]:
    return [_backup_volume(v) for v in _data(_get("backupvolumes.list", "/v1/backupvolumes"))]


def list_backups(backup_volume: str) -> list[Backup]:
    """Every backup of one backup volume, oldest first (Longhorn sorts by random name)."""
    data = _data(_action("backupvolumes.backupList", f"/v1/backupvolumes/{backup_volume}",
                         "backupList", {}, idempotent=True))
    backups = [_backup(b) for b in data]
    return sorted(backups, key=_created_key)


def _created_key(backup: Backup) -> tuple:
    when = backup.created or backup.snapshot_created
    return (when is None, when.timestamp() if when else 0.0, backup.name)


@dataclass(frozen=True)
class Snapshot:
    name: str
    volume: str
    ready: bool
    error: str
    created: datetime | None


def _snapshot(obj: dict) -> Snapshot:
    return Snapshot(name=obj.get("name") or obj.get("id", ""), volume=obj.get("volume", ""),
                    ready=bool(obj.get("readyToUse")), error=obj.get("error") or "",
                    created=parse_time(obj.get("creationTime") or obj.get("crCreationTime")))


def create_snapshot(volume: str, name: str, labels: dict[str, str] | None = None) -> Snapshot:
    """snapshotCRCreate: a Snapshot CR (1.5+); Longhorn attaches a detached volume itself."""
    data = _action("volumes.snapshotCRCreate", f"/v1/volumes/{volume}", "snapshotCRCreate",
                   {"name": name, "labels": labels or {}}, idempotent=False)
    return _snapshot(data or {})


def get_snapshot(volume: str, name: str) -> Snapshot:
    data = _action("volumes.snapshotCRGet", f"/v1/volumes/{volume}", "snapshotCRGet", {"name": name},
                   idempotent=True)
    return _snapshot(data or {})


def backup_snapshot(volume: str, snapshot: str, labels: dict[str, str], mode: str) -> Volume:
    """snapshotBackup: start a backup of `snapshot`. Longhorn answers with the volume, not the backup."""
    data = _action("volumes.snapshotBackup", f"/v1/volumes/{volume}", "snapshotBackup",
                   {"name": snapshot, "labels": labels, "backupMode": mode}, idempotent=False)
    return _volume(data or {})


def create_volume(name: str, *, size: str, from_backup: str, number_of_replicas: int,
                  access_mode: str = "rwo", stale_replica_timeout: int = 30, data_engine: str = "v1") -> Volume:
    """POST /v1/volumes with `fromBackup`: a new volume that Longhorn restores asynchronously."""
    body = {"name": name, "size": size, "numberOfReplicas": number_of_replicas, "staleReplicaTimeout":
            stale_replica_timeout, "accessMode": access_mode, "dataEngine": data_engine, "fromBackup": from_backup}
    return _volume(_request("volumes.create", "POST", "/v1/volumes", body=body, idempotent=False) or {})


def delete_volume(name: str) -> None:
    """DELETE /v1/volumes/{name}; a volume that is already gone counts as deleted."""
    try:
        _request("volumes.delete", "DELETE", f"/v1/volumes/{name}", idempotent=True)
    except NotFound:
        return



def delete_backup(backup_volume: str, name: str) -> None:
    """backupDelete on the backup volume: removes the backup from the backupstore (idempotent)."""
    _action("backupvolumes.backupDelete", f"/v1/backupvolumes/{backup_volume}", "backupDelete", {"name": name},
            idempotent=True)


def delete_snapshot(volume: str, name: str) -> None:
    """snapshotCRDelete: remove a Snapshot CR (and the engine's snapshot). Idempotent."""
    try:
        _action("volumes.snapshotCRDelete", f"/v1/volumes/{volume}", "snapshotCRDelete", {"name": name},
                idempotent=True)
    except NotFound:
        return


def list_snapshots(volume: str) -> list[Snapshot]:
    """snapshotCRList: the volume's Snapshot CRs."""
    data = _action("volumes.snapshotCRList", f"/v1/volumes/{volume}", "snapshotCRList", {}, idempotent=True)
    return [_snapshot(s) for s in _data(data)]


def expand_volume(name: str, size: str) -> Volume:
    """`expand` with `{"size": "<bytes>"}`; Longhorn rounds up and ignores a size not larger."""
    return _volume(_action("volumes.expand", f"/v1/volumes/{name}", "expand", {"size": size},
                           idempotent=False) or {})


def get_setting(name: str) -> str | None:
    """A setting's value; None when this Longhorn does not have the setting."""
    try:
        data = _get("settings.get", f"/v1/settings/{name}")
    except NotFound:
        return None
    except UpstreamError as exc:
        if "not supported" in exc.detail or "not found" in exc.detail.lower():
            return None
        raise
    if not isinstance(data, dict):
        return None
    value = data.get("value")
    return None if value is None else str(value)
