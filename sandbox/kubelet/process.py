"""One container's process: bubblewrap around the command, its log, its end.

The process runs inside a private mount (and PID, IPC, UTS) namespace made by
bwrap: the new root is a tmpfs holding read-only bind mounts of the host's
top-level entries, with private /tmp, /var/tmp and /root (HOME), a fresh /proc
and /dev, and each volume bound at its mountPath. A mountPath (or workingDir)
missing on the host, like /mnt/data, needs a writable parent: its deepest
existing ancestor (/mnt) becomes a tmpfs re-populated with read-only binds of
the host's entries there. Nothing is created on the host. The network
namespace is the host's, so 127.0.0.1 is the host's loopback.

Output (stdout and stderr combined) is written to the container's log file in
the CRI line format `<RFC3339Nano time> <F|P> <text>` (P: the line continues).
"""

from __future__ import annotations

import collections
import os
import shutil
import signal
import subprocess
import threading
from datetime import datetime, timezone
from pathlib import Path

from .volumes import Mount

# Host entries that get a fresh or private replacement instead of a bind mount.
PRIVATE = {"proc": "--proc", "dev": "--dev", "tmp": "--tmpfs", "root": "--tmpfs"}
WRITABLE = ("/tmp", "/var/tmp", "/root", "/dev")
TAIL_LINES = 80
TAIL_BYTES = 2048


def bwrap_argv(argv: list[str], mounts: list[Mount], hostname: str, workdir: str,
               termination_file: Path, termination_path: str) -> list[str]:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed; the sandbox kubelet needs it")
    args = [bwrap, "--die-with-parent", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
            "--hostname", hostname, "--tmpfs", "/", *_host_entries("/")]
    args += ["--tmpfs", "/var/tmp"] if os.path.isdir("/var/tmp") else []
    for parent in _writable_parents([m.target for m in mounts] + [termination_path, workdir]):
        args += ["--tmpfs", parent, *_host_entries(parent)]
    args += ["--bind", str(termination_file), termination_path]
    for mount in mounts:
        args += ["--ro-bind" if mount.read_only else "--bind", str(mount.source), mount.target]
    return [*args, "--dir", workdir, "--chdir", workdir, "--", *argv]


def _host_entries(directory: str) -> list[str]:
    """bwrap arguments re-creating the host's entries of `directory` read-only."""
    args = []
    for entry in sorted(os.scandir(directory), key=lambda e: e.name):
        if directory == "/" and entry.name in PRIVATE:
            args += [PRIVATE[entry.name], entry.path]
        elif entry.is_symlink():
            args += ["--symlink", os.readlink(entry.path), entry.path]
        else:
            args += ["--ro-bind", entry.path, entry.path]
    return args


def _writable_parents(paths: list[str]) -> list[str]:
    """For paths missing on the host, their deepest existing (read-only) ancestors, parents first."""
    parents = set()
    for path in paths:
        if os.path.lexists(path):
            continue
        parent = os.path.dirname(path)
        while not os.path.isdir(parent):
            parent = os.path.dirname(parent)
        parent = os.path.realpath(parent)
        if parent != "/" and not any(parent == w or parent.startswith(w + "/") for w in WRITABLE):
            parents.add(parent)
    return sorted(parents, key=lambda p: p.count("/"))


def _timestamp() -> str:
    now = datetime.now(timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond * 1000:09d}Z"


class ContainerProcess:
    """A started container process; wait() gives its exit code as a container runtime reports it."""

    def __init__(self, argv: list[str], env: dict[str, str], log_path: Path):
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(log_path, "ab")
        self._tail: collections.deque[bytes] = collections.deque(maxlen=TAIL_LINES)
        # Its own process group, so a kill reaches everything it started.
        self.proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.proc.pid
        self._pump = threading.Thread(target=self._copy_output, name=f"output-{self.pid}", daemon=True)
        self._pump.start()

    def _copy_output(self) -> None:
        with self._log:
            for line in iter(self.proc.stdout.readline, b""):
                complete = line.endswith(b"\n")
                text = line[:-1] if complete else line
                self._log.write(f"{_timestamp()} {'F' if complete else 'P'} ".encode() + text + b"\n")
                self._log.flush()
                self._tail.append(line)
        self.proc.stdout.close()

    def wait(self) -> int:
        code = self.proc.wait()
        self._pump.join()
        return 128 - code if code < 0 else code  # killed by signal N -> 128+N, like a runtime

    def kill(self, grace: float) -> None:
        """SIGTERM the process group and SIGKILL it after `grace` seconds (at once if 0); returns at once."""
        if grace <= 0:
            self._signal(signal.SIGKILL)
            return
        self._signal(signal.SIGTERM)
        timer = threading.Timer(grace, self._signal, (signal.SIGKILL,))
        timer.daemon = True
        timer.start()

    def _signal(self, sig: int) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.pid, sig)
            except ProcessLookupError:
                pass

    def output_tail(self) -> str:
        """The last lines of output (at most TAIL_BYTES), as a termination message falls back to."""
        text = b"".join(self._tail)[-TAIL_BYTES:]
        return text.decode(errors="replace")
