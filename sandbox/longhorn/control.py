"""The sandbox-only control API under /sandbox/ (not part of Longhorn).

  GET|POST|DELETE /sandbox/faults   list, add, clear injected faults (see faults.py)
  GET|DELETE      /sandbox/calls    per-route counts of /v1 calls; reset them
  POST            /sandbox/seed     bulk-load volumes and historical backups
  GET|POST        /sandbox/config   read or change {"op_seconds": float}
  GET             /sandbox/state    how many volumes, backups, ... are held
  POST            /sandbox/reset    forget every volume, backup and snapshot

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
    }
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
            "kube_sync_seconds": emu.kube.sync_seconds if emu.kube else None}


def _set_config(emu, body) -> dict:
    value = body.get("op_seconds") if isinstance(body, dict) else None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
        raise BadRequest("op_seconds: a number of seconds >= 0 is required")
    emu.op_seconds = float(value)
    return _config(emu)


def _state(emu) -> dict:
    tables = emu.store.tables
    return {"volumes": len(tables["volumes"]), "backups": len(tables["backups"]),
            "backupVolumes": len(tables["backup_volumes"]), "snapshots": len(tables["snapshots"]),
            "activeVolumes": len(emu.active_volumes), "activeBackups": len(emu.active_backups)}


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
    if completed:
        record.update(url=backups.backup_url(record), newlyUploaded=record["size"], reUploaded="0")
        if created < touched.get(volume_name, "~"):
            touched[volume_name] = created
    emu.store.put("backups", name, record)
