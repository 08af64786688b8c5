"""The kubelet stand-in: plays scheduler and kubelet for the sandbox's pods.

It registers the Node `sandbox-node` and keeps it Ready, binds unscheduled
pods to it, runs each pod's containers on this machine (the real restic
binary, inside a bubblewrap mount namespace where each PVC is a local
directory at its mountPath), patches pod status so the real Job controller
completes or fails Jobs, serves container logs to the apiserver, and plays
the `rancher.io/local-path` provisioner for claims of that class.
See docs/sandbox-kubelet.md for what it does and how it differs from a kubelet.

This module only starts and stops it; it does not import the Kubernetes client.
"""

from __future__ import annotations

import ssl
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .. import procs
from ..config import HOST, NODE_NAME, SandboxConfig

REPO = Path(__file__).resolve().parents[2]


def state_dir(cfg: SandboxConfig) -> Path:
    return cfg.state_dir / "kubelet"


def argv(cfg: SandboxConfig) -> list[str]:
    return [sys.executable, "-m", "sandbox.kubelet", "--kubeconfig", str(cfg.kubeconfig), "--node", NODE_NAME,
            "--port", str(cfg.port("kubelet")), "--state-dir", str(state_dir(cfg)),
            "--longhorn-volumes", str(cfg.longhorn_volumes_dir), "--local-volumes", str(cfg.local_volumes_dir)]


def healthy(cfg: SandboxConfig) -> bool:
    """The stand-in answers on its HTTPS port (it opens it once registered and watching)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # its certificate is self-signed, like a kubelet's default one
    try:
        with urllib.request.urlopen(f"https://{HOST}:{cfg.port('kubelet')}/healthz", timeout=2,
                                    context=context) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def start(cfg: SandboxConfig, timeout: float = 30) -> int:
    """Start the stand-in (the apiserver must be up) and wait until it is ready; its PID."""
    pid = procs.start(cfg, "kubelet", argv(cfg), cwd=REPO)
    deadline = time.monotonic() + timeout
    while not healthy(cfg):
        if time.monotonic() > deadline or not procs.running_pid(cfg, "kubelet"):
            raise RuntimeError("the kubelet stand-in did not become ready; last log lines:\n"
                               + procs.log_tail(cfg, "kubelet"))
        time.sleep(0.2)
    return pid


def stop(cfg: SandboxConfig) -> bool:
    return procs.stop(cfg, "kubelet")
