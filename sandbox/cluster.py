"""Bring the whole sandbox up or down: the control plane, S3, Longhorn, the kubelet.

`up` is idempotent (what runs is left running) and seeds the demo data once;
`down` stops every process it started, by PID, and removes the state
directory, so the next `up` starts clean (the built binaries stay cached).
"""

from __future__ import annotations

import shutil
import sys
import time
import urllib.error
import urllib.request

from . import kube, kubelet, procs, s3
from .config import HOST, NODE_NAME, SandboxConfig

# Start order; `down` stops in reverse.
SERVICES = ("etcd", "kube-apiserver", "kube-controller-manager", "s3", "longhorn", "kubelet")


def start_longhorn(cfg: SandboxConfig) -> None:
    procs.start(cfg, "longhorn", [
        sys.executable, "-m", "sandbox.longhorn",
        "--host", HOST, "--port", str(cfg.port("longhorn")),
        "--state-dir", str(cfg.longhorn_dir), "--kubeconfig", str(cfg.kubeconfig),
        "--version", cfg.longhorn_version, "--op-seconds", str(cfg.longhorn_op_seconds),
        *(["--etcd-url", f"http://{HOST}:{cfg.port('etcd')}"] if cfg.longhorn_crs_via_etcd else []),
    ], cwd=kube.HERE.parent)
    kube._wait(lambda: longhorn_ready(cfg), 30, "longhorn", cfg)


def longhorn_ready(cfg: SandboxConfig) -> bool:
    try:
        with urllib.request.urlopen(f"{cfg.longhorn_url}/v1", timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start_kubelet(cfg: SandboxConfig) -> None:
    kubelet.start(cfg)
    kube._wait(lambda: node_ready(cfg), 60, "kubelet", cfg)


def node_ready(cfg: SandboxConfig) -> bool:
    try:
        node = _core(cfg).read_node(NODE_NAME, _request_timeout=3)
    except Exception:  # noqa: BLE001 - any failure (refused, 404, TLS) means not yet
        return False
    return any(c.type == "Ready" and c.status == "True" for c in (node.status.conditions or []))


def _core(cfg: SandboxConfig):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoreV1Api(api)


STARTERS = {
    "control-plane": kube.start,
    "s3": s3.start,
    "longhorn": start_longhorn,
    "kubelet": start_kubelet,
}


def up(cfg: SandboxConfig, seed: bool = True) -> float:
    """Start everything that is not running; seed the demo data once. Returns seconds taken."""
    started = time.monotonic()
    cfg.save()
    for starter in STARTERS.values():
        starter(cfg)
    if seed and not (cfg.state_dir / "seeded").exists():
        from . import seed as seeding

        seeding.demo(cfg)
        (cfg.state_dir / "seeded").write_text("demo\n")
    return time.monotonic() - started


def down(cfg: SandboxConfig, keep_state: bool = False) -> list[str]:
    """Stop every sandbox process; returns the names that were running."""
    stopped = [name for name in reversed(SERVICES) if procs.stop(cfg, name)]
    if not keep_state and cfg.state_dir.exists():
        shutil.rmtree(cfg.state_dir)
    return stopped


def stop_service(cfg: SandboxConfig, name: str) -> bool:
    """Fault injection: stop one service (e.g. kube-apiserver, longhorn), keeping its state."""
    if name not in SERVICES:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")
    return procs.stop(cfg, name)


def start_service(cfg: SandboxConfig, name: str) -> None:
    """Start one stopped service again (its state is where it was)."""
    if name in ("etcd", "kube-apiserver", "kube-controller-manager"):
        kube.start(cfg)
    elif name in STARTERS:
        STARTERS[name](cfg)
    else:
        raise ValueError(f"unknown service {name!r}; one of {', '.join(SERVICES)}")


def status(cfg: SandboxConfig) -> dict[str, int | None]:
    return {name: procs.running_pid(cfg, name) for name in SERVICES}


def exports(cfg: SandboxConfig) -> dict[str, str]:
    """What Soteria needs to reach the sandbox, as environment variables."""
    return {
        "KUBECONFIG": str(cfg.kubeconfig),
        "SOTERIA_LONGHORN_URL": cfg.longhorn_url,
        "SOTERIA_RESTIC_REPOSITORY": cfg.restic_repository,
        "SOTERIA_S3_ENDPOINT": cfg.s3_endpoint,
        "SOTERIA_SECRET_NAMESPACE": "soteria",
    }
