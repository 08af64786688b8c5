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
    """Per-route counts of /v1 calls since the last reset."""
    return _call(cfg, "GET", "/sandbox/calls")["calls"]


def reset_calls(cfg: SandboxConfig) -> dict:
    return _call(cfg, "DELETE", "/sandbox/calls")


def set_op_seconds(cfg: SandboxConfig, seconds: float) -> dict:
    return _call(cfg, "POST", "/sandbox/config", {"op_seconds": seconds})


def longhorn_seed(cfg: SandboxConfig, payload: dict) -> dict:
    return _call(cfg, "POST", "/sandbox/seed", payload, timeout=600)  # bulk loads take a while
