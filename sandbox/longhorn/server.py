"""The WSGI application: routing like the manager's gorilla/mux router.

Paths and methods are matched first (unmatched path: plain-text "404 page not
found"; known path, other method: 405 with no body; a trailing slash is
redirected, as mux's StrictSlash does). Actions are POSTs with `?action=`; an
action the emulator does not know gets 405, as an unknown action does in
Longhorn. Every /v1 call is counted under its route key and checked against
the injected faults before it runs; while it runs it counts as in flight (the peak is
kept), after the configured `call_delay_seconds`. /sandbox/... is the control API.
"""

from __future__ import annotations

import logging
import time

from werkzeug.exceptions import MethodNotAllowed, NotFound
from werkzeug.routing import Map, Rule
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from . import backup_volumes, control, k8s, settings, snapshots, volumes
from .api import ApiError, Ctx, empty_response, error_response, not_found, text_response
from .inputs import decode

log = logging.getLogger(__name__)

# Route key -> handler, for plain routes (endpoint == route key).
ROUTES = {
    "root": settings.root, "apiversion": settings.api_version,
    "volumes.list": volumes.list_volumes, "volume.create": volumes.create_volume,
    "volume.get": volumes.get_volume, "volume.delete": volumes.delete_volume,
    "backupvolumes.list": backup_volumes.list_backup_volumes, "backupvolumes.sync": backup_volumes.sync_all,
    "backupvolume.get": backup_volumes.get_backup_volume, "backupvolume.delete": backup_volumes.delete_backup_volume,
    "backuptargets.list": settings.list_backup_targets, "backuptarget.get": settings.get_backup_target,
    "settings.list": settings.list_settings, "setting.get": settings.get_setting,
}
VOLUME_ACTIONS = {
    "attach": volumes.attach, "detach": volumes.detach,
    "snapshotCRCreate": snapshots.cr_create, "snapshotCRGet": snapshots.cr_get,
    "snapshotCRList": snapshots.cr_list, "snapshotCRDelete": snapshots.cr_delete,
    "snapshotCreate": snapshots.engine_create, "snapshotList": snapshots.engine_list,
    "snapshotGet": snapshots.engine_get, "snapshotDelete": snapshots.engine_delete,
    "snapshotBackup": snapshots.backup, "pvCreate": k8s.pv_create, "pvcCreate": k8s.pvc_create,
    "expand": volumes.expand,
}
# Actions the manager forwards to the volume's owner node; that lookup 404s first.
FORWARDED = {"snapshotCreate", "snapshotList", "snapshotGet", "snapshotDelete", "snapshotBackup"}
BACKUP_VOLUME_ACTIONS = {
    "backupList": backup_volumes.backup_list, "backupGet": backup_volumes.backup_get,
    "backupDelete": backup_volumes.backup_delete, "backupVolumeSync": backup_volumes.backup_volume_sync,
    "backupListByVolume": backup_volumes.backup_list_by_volume,
}
BACKUP_TARGET_ACTIONS = {"backupTargetSync": settings.sync_backup_target}
ONLY_18 = {"backupListByVolume", "backuptarget.get"}
# Keys whose handler takes the fault, for fail_async.
ASYNC = {"volume.create", "snapshotBackup"}


def _url_map() -> Map:
    rules = [
        ("/", "GET", "root"), ("/v1", "GET", "apiversion"),
        ("/v1/apiversions", "GET", "root"), ("/v1/apiversions/v1", "GET", "apiversion"),
        ("/v1/volumes", "GET", "volumes.list"), ("/v1/volumes", "POST", "volume.create"),
        ("/v1/volumes/<name>", "GET", "volume.get"), ("/v1/volumes/<name>", "DELETE", "volume.delete"),
        ("/v1/volumes/<name>", "POST", "volume.action"),
        ("/v1/backupvolumes", "GET", "backupvolumes.list"), ("/v1/backupvolumes", "PUT", "backupvolumes.sync"),
        ("/v1/backupvolumes/<bv_id>", "GET", "backupvolume.get"),
        ("/v1/backupvolumes/<bv_id>", "DELETE", "backupvolume.delete"),
        ("/v1/backupvolumes/<bv_id>", "POST", "backupvolume.action"),
        ("/v1/backuptargets", "GET", "backuptargets.list"),
        ("/v1/backuptargets/<name>", "GET", "backuptarget.get"),
        ("/v1/backuptargets/<name>", "POST", "backuptarget.action"),
        ("/v1/settings", "GET", "settings.list"), ("/v1/settings/<name>", "GET", "setting.get"),
    ]
    return Map([Rule(path, methods=[method], endpoint=endpoint) for path, method, endpoint in rules],
               merge_slashes=False, strict_slashes=False)


class App:
    def __init__(self, emu):
        self.emu = emu
        self.url_map = _url_map()

    def __call__(self, environ, start_response):
        request = Request(environ)
        if request.path.startswith("/sandbox/"):
            response = control.dispatch(self.emu, request)
        else:
            response = self.dispatch(request)
        return response(environ, start_response)

    def _match(self, request: Request):
        if request.method in ("HEAD", "OPTIONS"):  # mux adds neither automatically
            self.url_map.bind_to_environ(request.environ).match(method="-")
        return self.url_map.bind_to_environ(request.environ).match()

    def dispatch(self, request: Request) -> Response:
        path = request.path
        if len(path) > 1 and path.endswith("/"):
            return redirect(path.rstrip("/") or "/", code=301)
        try:
            endpoint, args = self._match(request)
        except NotFound:
            self.emu.faults.count_call("unmatched")
            return text_response(404, "404 page not found\n")
        except MethodNotAllowed:
            self.emu.faults.count_call("method_not_allowed")
            return empty_response(405)
        key, handler = self._resolve(endpoint, request)
        if handler is None:
            self.emu.faults.count_call("method_not_allowed")
            return empty_response(405)
        self.emu.faults.count_call(key)
        ctx = Ctx(request)
        try:
            with self.emu.faults.in_flight():
                delay = float(self.emu.config["call_delay_seconds"])
                if delay:
                    time.sleep(delay)
                return self._run(key, handler, ctx, request, args)
        except ApiError as exc:
            return error_response(ctx, exc.status, exc.message)
        except Exception as exc:  # the manager answers 500 for anything unexpected too
            log.exception("%s %s failed", request.method, path)
            return error_response(ctx, 500, str(exc))

    def _resolve(self, endpoint: str, request: Request):
        """(route key, handler); handler None means no such route (405)."""
        if endpoint.endswith(".action"):
            action = request.args.get("action", "")
            table = {"volume.action": VOLUME_ACTIONS, "backupvolume.action": BACKUP_VOLUME_ACTIONS,
                     "backuptarget.action": BACKUP_TARGET_ACTIONS}[endpoint]
            handler = table.get(action)
            if action in ONLY_18 and not self.emu.v18:
                handler = None
            return action, handler
        if endpoint in ONLY_18 and not self.emu.v18:
            return endpoint, None
        return endpoint, ROUTES[endpoint]

    def _run(self, key: str, handler, ctx: Ctx, request: Request, args: dict) -> Response:
        target = args.get("name") or args.get("bv_id") or ""
        if key == "volume.create":
            target = _body_name(request)
        fault = self.emu.faults.take(key, target)
        if fault is not None:
            if fault.mode == "error":
                return error_response(ctx, fault.status, fault.message)
            if fault.mode == "timeout":
                fault.released.wait(60.0 if fault.delay is None else fault.delay)
                return error_response(ctx, fault.status, fault.message)
            if fault.mode == "slow":
                fault.released.wait(1.0 if fault.delay is None else fault.delay)
        if key in FORWARDED and self.emu.store.get("volumes", args["name"]) is None:
            raise not_found("volume.longhorn.io", args["name"]).wrap(
                f"failed to get the parameters: failed to get target node ID: failed to get volume '{args['name']}'")
        if key in ASYNC:
            return handler(self.emu, ctx, request, fault=fault, **args)
        return handler(self.emu, ctx, request, **args)


def _body_name(request: Request) -> str:
    try:
        return decode(request.get_data(), "Volume")["name"]
    except ApiError:
        return ""
