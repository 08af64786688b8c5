"""The loopback S3 endpoint restic repositories live in: moto's server.

moto runs from its own virtualenv (cfg.s3_venv, built from
requirements-s3.txt) because its botocore pins a python-dateutil the main
venv's kubernetes client cannot use. Any credentials work; restic's `init`
creates the bucket; an IP endpoint gets path-style addressing.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import procs
from .config import HOST, SandboxConfig

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-s3.txt"
# Credentials the sandbox hands to restic; moto accepts any.
ACCESS_KEY_ID = "sandbox"
SECRET_ACCESS_KEY = "sandbox-secret"


def moto_server(cfg: SandboxConfig) -> Path:
    return cfg.s3_venv / "bin" / "moto_server"


def ensure_venv(cfg: SandboxConfig) -> Path:
    """Create the S3 virtualenv and install moto into it unless moto_server is already there."""
    server = moto_server(cfg)
    if server.exists():
        return server
    print(f"sandbox: installing moto into {cfg.s3_venv} (first start only)...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(cfg.s3_venv)], check=True)
    subprocess.run([str(cfg.s3_venv / "bin" / "pip"), "install", "--quiet", "-r", str(REQUIREMENTS)], check=True)
    if not server.exists():
        raise RuntimeError(f"installing {REQUIREMENTS} did not provide {server}")
    return server


def answering(cfg: SandboxConfig, timeout: float = 2.0) -> bool:
    """True once the endpoint answers HTTP at all (an S3 error status counts)."""
    try:
        with urllib.request.urlopen(cfg.s3_endpoint + "/", timeout=timeout):
            return True
    except urllib.error.HTTPError:
        return True
    except (urllib.error.URLError, OSError):
        return False


def start(cfg: SandboxConfig, timeout: float = 30) -> int:
    """Start moto's server on 127.0.0.1:<s3 port> and wait until it answers; its PID."""
    server = ensure_venv(cfg)
    pid = procs.start(cfg, "s3", [str(server), "-H", HOST, "-p", str(cfg.port("s3"))])
    deadline = time.monotonic() + timeout
    while not answering(cfg):
        if time.monotonic() > deadline or _exited(pid):
            raise RuntimeError(f"the S3 endpoint did not answer within {timeout:.0f}s; last log lines:\n"
                               + procs.log_tail(cfg, "s3"))
        time.sleep(0.2)
    return pid


def _exited(pid: int) -> bool:
    """True once the server process has exited (its PID file marker cannot tell just after fork)."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:  # started by another process: look it up
        return not Path(f"/proc/{pid}").exists()
    return done == pid


def stop(cfg: SandboxConfig) -> bool:
    return procs.stop(cfg, "s3")


def restic_env(cfg: SandboxConfig) -> dict[str, str]:
    """Environment for a restic process using the loopback endpoint (no password: add RESTIC_PASSWORD)."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET_ACCESS_KEY,
            "RESTIC_REPOSITORY": cfg.restic_repository}
