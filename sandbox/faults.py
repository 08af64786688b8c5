"""Fault injection from the command line and from tests: the Longhorn emulator's
/sandbox/faults control API (see docs/sandbox-longhorn.md)."""

from __future__ import annotations

import json
import urllib.request

from .config import SandboxConfig


def _call(cfg: SandboxConfig, method: str, path: str, body: dict | None = None, timeout: float = 10) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{cfg.longhorn_url}{path}", data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.loads(response.read() or b"{}")


def inject(cfg: SandboxConfig, action: str, *, mode: str = "error", count: int = 1, delay: float = 5.0,
           message: str = "injected by the sandbox", target: str = "") -> dict:
    """Make the next `count` calls of a Longhorn action (or route key), optionally only on one
    resource (`target`), fail, hang, be slow, or (fail_async) start and then end in Error."""
    body = {"action": action, "mode": mode, "count": count, "delay": delay, "message": message}
    if target:
        body["target"] = target
    return _call(cfg, "POST", "/sandbox/faults", body)


def clear(cfg: SandboxConfig) -> dict:
    return _call(cfg, "DELETE", "/sandbox/faults")


def calls(cfg: SandboxConfig) -> dict[str, int]:
    """Per-route counts of /v1 calls since the last reset (`peak_concurrency` reads the peak)."""
    return _call(cfg, "GET", "/sandbox/calls")["calls"]


def peak_concurrency(cfg: SandboxConfig) -> int:
    """The most /v1 calls the emulator handled at once since the last reset."""
    return _call(cfg, "GET", "/sandbox/calls")["peak_concurrent"]


def in_flight(cfg: SandboxConfig) -> int:
    """How many /v1 calls the emulator is handling now (a hanging or slow fault's included)."""
    return _call(cfg, "GET", "/sandbox/calls")["in_flight"]


def set_call_delay(cfg: SandboxConfig, seconds: float) -> dict:
    """A fixed latency added to every /v1 call (0: none), as a manager across a network has."""
    return configure(cfg, call_delay_seconds=seconds)


def reset_calls(cfg: SandboxConfig) -> dict:
    return _call(cfg, "DELETE", "/sandbox/calls")


def set_op_seconds(cfg: SandboxConfig, seconds: float) -> dict:
    return _call(cfg, "POST", "/sandbox/config", {"op_seconds": seconds})


def longhorn_seed(cfg: SandboxConfig, payload: dict) -> dict:
    return _call(cfg, "POST", "/sandbox/seed", payload, timeout=600)  # bulk loads take a while


# Longhorn behaviours (see docs/sandbox-longhorn.md, "Behaviour switches") ------------------
def configure(cfg: SandboxConfig, **settings) -> dict:
    """Change the emulator's switches, e.g. snapshot_max_count=5, failed_backup_ttl_minutes=0.01,
    backup_poll_seconds=0.2, snapshot_attach_seconds=3, auto_cleanup_snapshot_after_backup=True,
    volume_list_scan_ns=0, call_delay_seconds=0.02. Returns the whole configuration."""
    return _call(cfg, "POST", "/sandbox/config", settings)


def config(cfg: SandboxConfig) -> dict:
    return _call(cfg, "GET", "/sandbox/config")


def set_snapshot_max_count(cfg: SandboxConfig, count: int) -> dict:
    """Longhorn's snapshot-max-count setting (2-250, default 250) for volumes without their own count."""
    return configure(cfg, snapshot_max_count=count)


def set_failed_backup_ttl(cfg: SandboxConfig, minutes: float, poll_seconds: float | None = None) -> dict:
    """Longhorn's failed-backup-ttl (minutes, default 1440, 0 = keep); the clean-up runs every
    `poll_seconds` (Longhorn: the backupstore poll interval, 300 s)."""
    settings = {"failed_backup_ttl_minutes": minutes}
    if poll_seconds is not None:
        settings["backup_poll_seconds"] = poll_seconds
    return configure(cfg, **settings)


def set_attached(cfg: SandboxConfig, volume: str, attached: bool) -> dict:
    """Attach or detach a Longhorn volume as a user would (an API attachment ticket)."""
    return _call(cfg, "POST", f"/sandbox/volumes/{volume}/attachment", {"attached": attached})


def end_backup(cfg: SandboxConfig, backup: str, state: str = "Unknown", error: str = "") -> dict:
    """Make a backup end now in state Unknown (or Error), as the backup controller would."""
    return _call(cfg, "POST", f"/sandbox/backups/{backup}", {"state": state, "error": error})


def mirror_status(cfg: SandboxConfig) -> dict:
    """How far the Longhorn CRs in the API server lag the emulator's state."""
    return _call(cfg, "GET", "/sandbox/mirror")


def wait_mirrored(cfg: SandboxConfig, timeout: float = 600.0) -> dict:
    """Until every Longhorn CR is written (after a seed, say). Returns the mirror's status."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        try:
            status = mirror_status(cfg)
        except TimeoutError:  # an emulator writing hundreds of thousands of CRs answers late
            if time.monotonic() > deadline:
                raise
            continue
        if not status.get("enabled") or (status["ready"] and not status["pending"] and not status["busy"]
                                         and not status["resyncPending"]):
            return status
        if time.monotonic() > deadline:
            raise TimeoutError(f"Longhorn CRs still pending after {timeout:.0f}s: {status}")
        time.sleep(0.2)
