"""Start and stop the sandbox's background processes, tracked by PID file.

Each process runs in its own session (so its children die with it), logs to
<state>/logs/<name>.log and is stopped by PID: SIGTERM to its process group,
then SIGKILL after a grace period. A PID file whose process is gone, or whose
PID now belongs to an unrelated program, is ignored.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from .config import SandboxConfig


def _pid_file(cfg: SandboxConfig, name: str) -> Path:
    return cfg.pid_dir / f"{name}.pid"


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def running_pid(cfg: SandboxConfig, name: str) -> int | None:
    """PID of the sandbox process `name` if it is alive, else None."""
    path = _pid_file(cfg, name)
    try:
        pid_text, marker = path.read_text().split("\n", 1)
        pid = int(pid_text)
    except (OSError, ValueError):
        return None
    cmd = _cmdline(pid)
    if not cmd or marker.strip() not in cmd:
        return None
    try:
        # A zombie has an empty cmdline, so reaching here means it is alive.
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    return pid


def start(cfg: SandboxConfig, name: str, argv: list[str], env: dict[str, str] | None = None,
          cwd: Path | None = None) -> int:
    """Start argv in the background unless `name` already runs; return its PID."""
    pid = running_pid(cfg, name)
    if pid:
        return pid
    cfg.pid_dir.mkdir(parents=True, exist_ok=True)
    cfg.log_dir.mkdir(parents=True, exist_ok=True)
    log = open(cfg.log_dir / f"{name}.log", "ab")
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )
    log.close()
    # The marker lets running_pid() tell our process from a recycled PID.
    _pid_file(cfg, name).write_text(f"{proc.pid}\n{Path(argv[0]).name}\n")
    return proc.pid


def stop(cfg: SandboxConfig, name: str, grace: float = 10.0) -> bool:
    """Stop `name` if it runs. Returns True if a process was stopped."""
    pid = running_pid(cfg, name)
    _pid_file(cfg, name).unlink(missing_ok=True)
    if not pid:
        return False
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        if not _alive(pid):
            break
        time.sleep(0.05)
    else:
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    # Children left in the group (a restic run, say) go too.
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # Our own child that exited is a zombie until reaped; count it as gone.
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def log_tail(cfg: SandboxConfig, name: str, lines: int = 30) -> str:
    path = cfg.log_dir / f"{name}.log"
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""
