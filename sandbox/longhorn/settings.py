"""Discovery (GET /, GET /v1), settings and backup targets.

The settings are the few a backup client reads, with the values of a default
installation whose backup target is the sandbox's S3 bucket. From 1.8 the
backup target is a BackupTarget resource only: the three backup-target
settings are gone and asking for them answers "setting ... is not supported".
"""

from __future__ import annotations

from .api import ApiError, Ctx, json_response, not_found
from .constants import BACKUP_POLL_INTERVAL, BACKUP_TARGET, BACKUP_TARGET_SECRET, BACKUP_TARGET_URL
from .inputs import decode

COLLECTIONS = ("volumes", "backupvolumes", "backuptargets", "settings")
BACKUP_TARGET_SETTINGS = ("backup-target", "backup-target-credential-secret", "backupstore-poll-interval")


def _definitions(emu) -> dict[str, tuple[str, str, str, bool, str]]:
    """name -> (display name, category, type, read-only, value)."""
    table = {
        "backup-target": ("Backup Target", "backup", "string", False, BACKUP_TARGET_URL),
        "backup-target-credential-secret": ("Backup Target Credential Secret", "backup", "string", False,
                                            BACKUP_TARGET_SECRET),
        "backupstore-poll-interval": ("Backupstore Poll Interval", "backup", "int", False,
                                      str(BACKUP_POLL_INTERVAL)),
        "backup-compression-method": ("Backup Compression Method", "backup", "string", False, "lz4"),
        "backup-concurrent-limit": ("Backup Concurrent Limit Per Backup", "backup", "int", False, "2"),
        "restore-concurrent-limit": ("Restore Concurrent Limit Per Backup", "backup", "int", False, "2"),
        "current-longhorn-version": ("Current Longhorn Version", "general", "string", True,
                                     emu.longhorn_version),
        "default-engine-image": ("Default Engine Image", "general", "string", True, emu.engine_image),
        "default-replica-count": ("Default Replica Count", "general", "int", False, "3"),
        "default-data-locality": ("Default Data Locality", "general", "string", False, "disabled"),
        "default-longhorn-static-storage-class": ("Default Longhorn Static StorageClass Name", "general",
                                                  "string", False, "longhorn-static"),
        "snapshot-max-count": ("Snapshot Maximum Count", "snapshot", "int", False,
                               str(emu.config["snapshot_max_count"])),
        "failed-backup-ttl": ("Failed Backup Time to Live", "backup", "int", False,
                              f"{emu.config['failed_backup_ttl_minutes']:g}"),
        "v1-data-engine": ("V1 Data Engine", "v1 data engine", "bool", False, "true"),
        "v2-data-engine": ("V2 Data Engine", "v2 data engine", "bool", False, "false"),
    }
    if emu.v18:
        for name in BACKUP_TARGET_SETTINGS:
            del table[name]
    return table


def _setting(ctx: Ctx, name: str, spec: tuple) -> dict:
    display, category, kind, read_only, value = spec
    definition = {"displayName": display, "description": f"{display} (sandbox emulator).",
                  "category": category, "type": kind, "required": False, "readOnly": read_only,
                  "default": value}
    return ctx.resource("setting", name, {"name": name, "value": value, "definition": definition,
                                          "applied": True})


def list_settings(emu, ctx: Ctx, request):
    data = [_setting(ctx, name, spec) for name, spec in sorted(_definitions(emu).items())]
    return json_response(ctx, ctx.collection("setting", data))


def get_setting(emu, ctx: Ctx, request, name: str):
    spec = _definitions(emu).get(name)
    if spec is None:
        raise ApiError(f"failed to get setting {name}: setting {name} is not supported")
    return json_response(ctx, _setting(ctx, name, spec))


def _target(emu, ctx: Ctx) -> dict:
    fields = {"name": BACKUP_TARGET, "backupTargetURL": BACKUP_TARGET_URL, "credentialSecret": BACKUP_TARGET_SECRET,
              "pollInterval": f"{BACKUP_POLL_INTERVAL // 60}m0s", "available": True, "message": ""}
    names = ["backupTargetSync", "backupTargetUpdate"] if emu.v18 else ["backupTargetSync"]
    return ctx.resource("backupTarget", BACKUP_TARGET, fields, names)


def list_backup_targets(emu, ctx: Ctx, request):
    body = ctx.collection("backupTarget", [_target(emu, ctx)], create=emu.v18)
    return json_response(ctx, body)


def get_backup_target(emu, ctx: Ctx, request, name: str):
    if name != BACKUP_TARGET:
        raise not_found("backuptarget.longhorn.io", name).wrap(f"failed to get backup target {name}")
    return json_response(ctx, _target(emu, ctx))


def sync_backup_target(emu, ctx: Ctx, request, name: str):
    """backupTargetSync: the emulator's backup volumes never lag, so there is nothing to fetch."""
    decode(request.get_data(), "SyncBackupResource")
    return get_backup_target(emu, ctx, request, name)


def root(emu, ctx: Ctx, request):
    version = {"id": "v1", "type": "apiVersion", "links": {"self": f"{ctx.base}/v1"}, "actions": {}}
    body = {"type": "collection", "resourceType": "apiVersion", "data": [version],
            "links": {"self": ctx.request_url, "latest": f"{ctx.base}/v1"}}
    return json_response(ctx, body)


def api_version(emu, ctx: Ctx, request):
    links = {name: f"{ctx.base}/v1/{name}" for name in COLLECTIONS}
    resource = ctx.resource("apiVersion", "v1", {})
    resource["links"].update(links)
    return json_response(ctx, resource)
