"""The sandbox-only control API under /sandbox/ (not part of Longhorn).

  GET|POST|DELETE /sandbox/faults   list, add, clear injected faults (see faults.py)
  GET|DELETE      /sandbox/calls    per-route counts of /v1 calls and the peak number of /v1
                                    calls in flight at once; reset both
  POST            /sandbox/seed     bulk-load volumes and historical backups
  GET|POST        /sandbox/config   read or change op_seconds and the behaviour switches
  GET             /sandbox/state    how many volumes, backups, ... are held
  POST            /sandbox/reset    forget every volume, backup and snapshot
  GET             /sandbox/mirror   how far the Longhorn CRs in the API server lag the state
  POST            /sandbox/volumes/<name>/attachment  {"attached": bool}: attach or detach by hand
  POST            /sandbox/backups/<name>             {"state", "error"}: force a backup's end state

Answers are JSON; invalid input answers 400 {"error": "..."}.
"""

from __future__ import annotations

import json
import logging
import re
import time

from werkzeug.wrappers import Request, Response

from . import backups, util, volumes
from .constants import NODE
from .core import DEFAULT_CONFIG
from .faults import parse_fault

log = logging.getLogger(__name__)

BACKUP_STATES = ("Completed", "Error", "InProgress", "Pending", "Unknown", "")
_CANONICAL_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


class BadRequest(ValueError):
    pass


def _json(payload, status: int = 200) -> Response:
    return Response(json.dumps(payload) + "\n", status=status, content_type="application/json")


def _body(request: Request):
    try:
        return json.loads(request.get_data() or b"{}")
    except ValueError as exc:
        raise BadRequest(f"body is not JSON: {exc}") from None


def dispatch(emu, request: Request) -> Response:
    route = (request.method, request.path.rstrip("/"))
    handlers = {
        ("GET", "/sandbox/faults"): lambda: _json({"faults": emu.faults.listing()}),
        ("POST", "/sandbox/faults"): lambda: _add_fault(emu, request),
        ("DELETE", "/sandbox/faults"): lambda: _json({"cleared": emu.faults.clear()}),
        ("GET", "/sandbox/calls"): lambda: _json(emu.faults.calls()),
        ("DELETE", "/sandbox/calls"): lambda: (emu.faults.reset_calls(), _json(emu.faults.calls()))[1],
        ("POST", "/sandbox/seed"): lambda: _json(seed(emu, _body(request))),
        ("GET", "/sandbox/config"): lambda: _json(_config(emu)),
        ("POST", "/sandbox/config"): lambda: _json(_set_config(emu, _body(request))),
        ("GET", "/sandbox/state"): lambda: _json(_state(emu)),
        ("POST", "/sandbox/reset"): lambda: (emu.reset(), _json(_state(emu)))[1],
        ("GET", "/sandbox/mirror"): lambda: _json(emu.mirror.status() if emu.mirror else {"enabled": False}),
    }
    parts = route[1].split("/")
    if route[0] == "POST" and len(parts) == 5 and parts[2] == "volumes" and parts[4] == "attachment":
        handlers[route] = lambda: _json(_set_attachment(emu, parts[3], _body(request)))
    if route[0] == "POST" and len(parts) == 4 and parts[2] == "backups":
        handlers[route] = lambda: _json(_set_backup_state(emu, parts[3], _body(request)))
    handler = handlers.get(route)
    if handler is None:
        known = any(path == route[1] for _, path in handlers)
        return _json({"error": f"{request.method} {request.path} is not a sandbox control route"},
                     405 if known else 404)
    try:
        return handler()
    except (BadRequest, ValueError) as exc:
        return _json({"error": str(exc)}, 400)
    except Exception as exc:
        log.exception("%s %s failed", request.method, request.path)
        return _json({"error": f"{type(exc).__name__}: {exc}"}, 500)


def _add_fault(emu, request: Request) -> Response:
    fault = emu.faults.add(parse_fault(_body(request)))
    return _json(fault.public(), 201)


def _config(emu) -> dict:
    return {"op_seconds": emu.op_seconds, "version": emu.version, "longhorn_version": emu.longhorn_version,
            "kube_sync_seconds": emu.kube.sync_seconds if emu.kube else None, **emu.config}


def _number(body: dict, key: str, minimum: float = 0, nullable: bool = False):
    value = body[key]
    if nullable and value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < minimum:
        raise BadRequest(f"{key}: a number >= {minimum} is required")
    return value


def _set_config(emu, body) -> dict:
    if not isinstance(body, dict) or not body:
        raise BadRequest("body: an object with op_seconds or one of " + ", ".join(DEFAULT_CONFIG))
    unknown = set(body) - set(DEFAULT_CONFIG) - {"op_seconds"}
    if unknown:
        raise BadRequest(f"unknown keys {sorted(unknown)}; known: op_seconds, {', '.join(DEFAULT_CONFIG)}")
    changes = {}
    if "op_seconds" in body:
        emu.op_seconds = float(_number(body, "op_seconds"))
    if "snapshot_max_count" in body:
        value = body["snapshot_max_count"]
        if not isinstance(value, int) or isinstance(value, bool) or not 2 <= value <= 250:
            raise BadRequest("snapshot_max_count: an integer from 2 to 250 (Longhorn's range) is required")
        changes["snapshot_max_count"] = value
    for key in ("failed_backup_ttl_minutes", "backup_poll_seconds", "volume_list_scan_ns", "call_delay_seconds"):
        if key in body:
            changes[key] = float(_number(body, key))
    if "snapshot_attach_seconds" in body:
        changes["snapshot_attach_seconds"] = _number(body, "snapshot_attach_seconds", nullable=True)
    if "auto_cleanup_snapshot_after_backup" in body:
        if not isinstance(body["auto_cleanup_snapshot_after_backup"], bool):
            raise BadRequest("auto_cleanup_snapshot_after_backup: true or false")
        changes["auto_cleanup_snapshot_after_backup"] = body["auto_cleanup_snapshot_after_backup"]
    if changes:
        emu.set_config(**changes)
    if "backup_poll_seconds" in changes or "failed_backup_ttl_minutes" in changes:
        emu.last_ttl_sweep = 0.0  # the next poll runs now
    return _config(emu)


def _set_attachment(emu, name: str, body) -> dict:
    """Attach (as a user would through the API) or detach a volume; the controller moves its state."""
    if not isinstance(body, dict) or not isinstance(body.get("attached"), bool):
        raise BadRequest('body: {"attached": true|false}')
    if emu.store.get("volumes", name) is None:
        raise BadRequest(f"no volume {name}")
    if body["attached"]:
        emu.set_ticket(name, "sandbox-control", {"type": "longhorn-api", "parameters": {}})
        emu.store.update("volumes", name, nodeID=NODE)
    else:
        with emu.store.lock:
            volume = emu.store.get("volumes", name)
            tickets = {k: v for k, v in volume["tickets"].items() if v["type"] != "longhorn-api"}
            emu.store.update("volumes", name, tickets=tickets, nodeID="")
            emu.active_volumes.add(name)
    return {"volume": name, "attached": body["attached"]}


def _set_backup_state(emu, name: str, body) -> dict:
    """End a backup now in a state of the caller's choice (Error, Unknown or Completed)."""
    if not isinstance(body, dict) or body.get("state") not in ("Error", "Unknown"):
        raise BadRequest('body: {"state": "Error"|"Unknown", "error": "..."}')
    backup = emu.store.get("backups", name)
    if backup is None:
        raise BadRequest(f"no backup {name}")
    error = body.get("error", "")
    if not isinstance(error, str):
        raise BadRequest("error: a string")
    backups.fail(emu, backup, error, state=body["state"])
    record = emu.store.get("backups", name)
    return {"name": name, "state": record["state"], "error": record["error"]}


def _state(emu) -> dict:
    tables = emu.store.tables
    return {"volumes": len(tables["volumes"]), "backups": len(tables["backups"]),
            "backupVolumes": len(tables["backup_volumes"]), "snapshots": len(tables["snapshots"]),
            "activeVolumes": len(emu.active_volumes), "activeBackups": len(emu.active_backups),
            "scanPairs": emu.scan_pairs}


# Seeding ---------------------------------------------------------------------------
def seed(emu, body) -> dict:
    """Load volumes and backups in one go (see docs/sandbox-longhorn.md for the format)."""
    if not isinstance(body, dict):
        raise BadRequest("body must be a JSON object")
    started = time.monotonic()
    now = util.now()
    specs = body.get("volumes") or []
    loose = body.get("backups") or []
    if not isinstance(specs, list) or not isinstance(loose, list):
        raise BadRequest("volumes and backups must be lists")
    if body.get("reset"):
        emu.reset()
    counts = {"volumes": 0, "backups": 0}
    touched: dict[str, str] = {}  # volume -> its earliest completed backup's time
    with emu.store.bulk():
        for spec in specs:
            volume = _seed_volume(emu, spec, now)
            counts["volumes"] += 1
            context = _volume_context(emu, volume["name"])
            for backup in spec.get("backups") or []:
                _seed_backup(emu, backup, volume["name"], context, touched, now)
                counts["backups"] += 1
        contexts: dict[str, dict] = {}
        for backup in loose:
            if not isinstance(backup, dict) or not isinstance(backup.get("volume"), str):
                raise BadRequest("each entry of backups needs a volume name")
            volume = backup["volume"]
            context = contexts.get(volume) or contexts.setdefault(volume, _volume_context(emu, volume))
            _seed_backup(emu, backup, volume, context, touched, now)
            counts["backups"] += 1
        for volume, first in touched.items():
            backups.ensure_backup_volume(emu, volume, util.parse_rfc3339(first))
            backups.refresh_backup_volume(emu, emu.bv_id(volume))
    return {**counts, "seconds": round(time.monotonic() - started, 3)}


def _time(value, field: str, default: float) -> tuple[str, float]:
    """(RFC 3339 text, epoch seconds) of a seed time given as text or epoch seconds."""
    if value is None:
        return util.rfc3339(default), default
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return util.rfc3339(value), float(value)
    if isinstance(value, str) and _CANONICAL_TIME.match(value):
        return value, 0.0  # epoch only needed for volumes; parsed lazily there
    try:
        ts = util.parse_rfc3339(value)
    except (TypeError, ValueError):
        raise BadRequest(f"{field}: {value!r} is not an RFC 3339 time") from None
    return util.rfc3339(ts), ts


def _seed_volume(emu, spec, now: float) -> dict:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadRequest("each volume needs a name")
    name = spec["name"]
    if not util.valid_longhorn_name(name) or util.dns1123_label_error(name) or len(name) > util.NAME_MAX_LENGTH:
        raise BadRequest(f"invalid volume name {name!r}")
    if emu.store.get("volumes", name) is not None:
        raise BadRequest(f"volume {name} already exists")
    try:
        size = util.round_up_size(util.parse_quantity(str(spec.get("size", "1Gi"))))
    except ValueError as exc:
        raise BadRequest(f"volume {name}: {exc}") from None
    created_text, created = _time(spec.get("created"), "created", now)
    created = created or util.parse_rfc3339(created_text)
    fields = {k: v for k, v in spec.items() if k in volumes.SPEC_DEFAULTS}
    record = volumes.new_record(emu, name, size, fields, created)
    record["state"] = "detached"
    if spec.get("state") == "attached":
        record.update(state="attached", nodeID=NODE,
                      tickets={"sandbox-seed": {"type": "longhorn-api", "parameters": {}}})
    if isinstance(spec.get("kubernetesStatus"), dict):
        record["kubernetesStatus"] = {**record["kubernetesStatus"], **spec["kubernetesStatus"]}
    emu.store.put("volumes", name, record)
    directory = emu.volume_dir(name)
    emu.remove_dir(directory)
    try:
        util.write_files(directory, spec.get("files") or {})
    except (ValueError, AttributeError) as exc:
        raise BadRequest(f"volume {name}: files: {exc}") from None
    return record


def _volume_context(emu, volume_name: str) -> dict:
    """What every seeded backup of one volume shares: Longhorn's labels, size and creation time."""
    volume = emu.store.get("volumes", volume_name)
    if volume is None:
        return {"labels": {}, "volumeSize": "", "volumeCreated": ""}
    labels = {backups.ACCESS_MODE_LABEL: volume["accessMode"]}
    if any(volume["kubernetesStatus"].get(k) for k in backups.KUBE_STATUS_KEYS):
        labels["KubernetesStatus"] = backups.go_json_kube_status(volume["kubernetesStatus"])
    return {"labels": labels, "volumeSize": str(volume["size"]), "volumeCreated": volume["createdAt"]}


def _seed_backup(emu, spec, volume_name: str, context: dict, touched: dict[str, str], now: float) -> None:
    if not isinstance(spec, dict):
        raise BadRequest("each backup must be an object")
    name = spec.get("name") or util.generate_name("backup")
    if name in emu.store.tables["backups"]:
        raise BadRequest(f"backup {name} already exists")
    state = spec.get("state", "Completed")
    if state not in BACKUP_STATES:
        raise BadRequest(f"backup {name}: state must be one of {', '.join(repr(s) for s in BACKUP_STATES)}")
    created, _ = _time(spec.get("created"), "created", now)
    snapshot_created = created if "snapshotCreated" not in spec else \
        _time(spec["snapshotCreated"], "snapshotCreated", now)[0]
    if not isinstance(spec.get("labels") or {}, dict):
        raise BadRequest(f"backup {name}: labels must be an object")
    labels = {**context["labels"], **spec["labels"]} if spec.get("labels") else context["labels"]
    completed = state == "Completed"
    record = backups.new_record(
        emu, name, volume_name, state=state, snapshot=spec.get("snapshotName") or util.generate_name("snap"),
        snapshotCreated=snapshot_created, created=created if completed else "", specLabels=labels,
        labels=labels if completed else None, backupMode=spec.get("backupMode", "incremental"),
        progress=int(spec.get("progress", 100 if completed else 0)),
        error=spec.get("error", "backup failed" if state == "Error" else ""),
        volumeSize=str(spec.get("volumeSize", context["volumeSize"])), volumeCreated=context["volumeCreated"])
    files = spec.get("files")
    if files:
        directory = emu.backup_dir(record["bv"], name)
        try:
            util.write_files(directory, files)
        except (ValueError, AttributeError) as exc:
            raise BadRequest(f"backup {name}: files: {exc}") from None
        record["content"] = True
        record["size"] = str(spec.get("size", util.dir_size(directory)))
    else:
        record["size"] = str(spec.get("size", "0"))
    if state in ("Error", "Unknown"):
        record.update(failedAt=now, syncedAt=util.rfc3339(now))
    if completed:
        record.update(url=backups.backup_url(record), newlyUploaded=record["size"], reUploaded="0")
        if created < touched.get(volume_name, "~"):
            touched[volume_name] = created
    emu.store.put("backups", name, record)
