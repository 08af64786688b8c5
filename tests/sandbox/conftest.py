"""Fixtures for the Longhorn emulator's tests.

The emulator runs as a real subprocess (`python -m sandbox.longhorn`) on a
loopback port; pvCreate/pvcCreate and CR tests also get a real kube-apiserver.
Ports are offsets from the session's SOTERIA_TEST_PORT_BASE (27440 by default):
base+10..19 here, base+20..29 for the kubelet tests, base+30..39 for the
lifecycle test, so sessions with bases 1000 apart never meet. Waiting is
always polling with a deadline.
Teardown stops every process it started and checks that none is left.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from sandbox import kube, procs
from sandbox.config import SandboxConfig
from tests.polling import wait_for

REPO = Path(__file__).resolve().parents[2]
TEST_PORT_BASE = int(os.environ.get("SOTERIA_TEST_PORT_BASE", "27440"))
PORT_BASE = TEST_PORT_BASE + 10
PORT_17, PORT_18, PORT_SPARE, PORT_KUBE = PORT_BASE + 3, PORT_BASE + 6, PORT_BASE + 7, PORT_BASE + 9
FAST = 0.5  # op_seconds for most tests


class PortReservation:
    """Holds ports with bound (not listening) sockets until a server needs them.

    Ports may be taken by other programs on the machine: any client socket on
    the machine (another test cluster's long-lived connections, say) may be
    given one and keep it, and our server then cannot bind. A port someone has
    bound is never handed out to client sockets, so the tests hold theirs from
    collection time on and release each one just before starting its server.
    """

    def __init__(self, ports):
        self._held: dict[int, socket.socket] = {}
        for port in ports:
            self.hold(port)

    def hold(self, port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # despite TIME_WAIT leftovers
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return
        self._held[port] = sock

    def release(self, *ports: int) -> None:
        for port in ports:
            sock = self._held.pop(port, None)
            if sock is not None:
                sock.close()


RESERVED = PortReservation(range(PORT_BASE, PORT_BASE + 10))


def port_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now.

    Another program on the machine may hold the port for a moment; starting a
    server then fails.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True



class Longhorn:
    """A tiny client for the emulator (/v1 and /sandbox)."""

    def __init__(self, url: str):
        self.url = url
        self.http = requests.Session()

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def post(self, path: str, body=None, **kwargs) -> requests.Response:
        return self.http.post(self.url + path, json=body, timeout=kwargs.pop("timeout", 30), **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.http.delete(self.url + path, timeout=kwargs.pop("timeout", 30), **kwargs)

    def action(self, collection: str, name: str, action: str, body=None, **kwargs) -> requests.Response:
        return self.post(f"/v1/{collection}/{name}?action={action}", body, **kwargs)

    def volume(self, name: str) -> dict:
        response = self.get(f"/v1/volumes/{name}")
        assert response.status_code == 200, response.text
        return response.json()

    def create_volume(self, name: str, size: str = "1Gi", **fields) -> dict:
        response = self.post("/v1/volumes", {"name": name, "size": size, "numberOfReplicas": 3, **fields})
        assert response.status_code == 200, response.text
        return response.json()

    def wait_volume(self, name: str, check: Callable[[dict], bool], timeout: float = 20.0, what: str = "") -> dict:
        return wait_for(lambda: (lambda v: v if check(v) else None)(self.volume(name)), timeout,
                        what or f"volume {name}")

    def ready_volume(self, name: str, files: dict[str, bytes] | None = None, state_dir: Path | None = None,
                     **fields) -> dict:
        """Create a volume, wait until it is detached, and put files in its directory."""
        self.create_volume(name, **fields)
        volume = self.wait_volume(name, lambda v: v["state"] == "detached", what=f"{name} detached")
        for rel, data in (files or {}).items():
            path = state_dir / "volumes" / name / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return volume

    def backup(self, volume: str, snapshot: str, labels: dict | None = None, **fields) -> dict:
        """Take a snapshot, back it up, wait for Completed; return the backupStatus entry."""
        response = self.action("volumes", volume, "snapshotCRCreate", {"name": snapshot})
        assert response.status_code == 200, response.text
        response = self.action("volumes", volume, "snapshotBackup",
                               {"name": snapshot, "labels": labels or {}, **fields})
        assert response.status_code == 200, response.text
        return wait_for(lambda: next((s for s in self.volume(volume)["backupStatus"]
                                      if s["snapshot"] == snapshot and s["state"] == "Completed"), None),
                        what=f"backup of {snapshot}")

    def reset(self, op_seconds: float = FAST) -> None:
        assert self.post("/sandbox/reset").status_code == 200
        assert self.delete("/sandbox/faults").status_code == 200
        assert self.delete("/sandbox/calls").status_code == 200
        assert self.post("/sandbox/config", {"op_seconds": op_seconds}).status_code == 200


class EmulatorProcess:
    """`python -m sandbox.longhorn` as a child process in its own session."""

    def __init__(self, port: int, state_dir: Path, version: str = "1.7", op_seconds: float = FAST,
                 kubeconfig: Path | None = None, namespace: str = ""):
        self.port, self.state_dir, self.version = port, state_dir, version
        self.op_seconds, self.kubeconfig = op_seconds, kubeconfig
        # Each emulator mirrors its CRs into its own namespace of the shared test API server.
        self.namespace = namespace or f"longhorn-{port}"
        self.proc: subprocess.Popen | None = None
        self.client = Longhorn(f"http://127.0.0.1:{port}")

    def start(self) -> EmulatorProcess:
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", self.port)) == 0:
                pytest.fail(f"port {self.port} is already in use; another emulator is running?")
        argv = [sys.executable, "-m", "sandbox.longhorn", "--host", "127.0.0.1", "--port", str(self.port),
                "--state-dir", str(self.state_dir), "--version", self.version,
                "--op-seconds", str(self.op_seconds), "--kube-sync-seconds", "0.5"]
        if self.kubeconfig:
            argv += ["--kubeconfig", str(self.kubeconfig), "--namespace", self.namespace]
        self.state_dir.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a client socket may grab the port between the check and the bind
            RESERVED.release(self.port)
            wait_for(lambda: port_free(self.port), 60, f"port {self.port} to be free")
            with open(self.log, "ab") as log:
                self.proc = subprocess.Popen(argv, cwd=REPO, stdin=subprocess.DEVNULL, stdout=log,
                                             stderr=subprocess.STDOUT, start_new_session=True,
                                             env={**os.environ, "PYTHONPATH": str(REPO)})
            if wait_for(self._up_or_exited, 60, f"the emulator on port {self.port}") == "up":
                return self
            if b"Address already in use" not in self.log.read_bytes():
                break
        pytest.fail(f"the emulator exited with {self.proc.returncode}; see {self.log}")

    @property
    def log(self) -> Path:
        return self.state_dir.parent / f"emulator-{self.port}.log"

    def _up_or_exited(self) -> str | None:
        if self.proc.poll() is not None:
            return "exited"
        try:
            return "up" if self.client.get("/v1", timeout=1).status_code == 200 else None
        except requests.ConnectionError:
            return None

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Signal the process group and wait for it; SIGKILL if it lingers. Returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        os.killpg(self.proc.pid, sig)
        try:
            code = self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            code = self.proc.wait(timeout=10)
        RESERVED.hold(self.port)
        return code


@pytest.fixture(scope="session")
def emulator_17(tmp_path_factory):
    process = EmulatorProcess(PORT_17, tmp_path_factory.mktemp("lh17") / "state").start()
    yield process
    process.stop()
    assert process.proc.poll() is not None


@pytest.fixture(scope="session")
def emulator_18(tmp_path_factory):
    process = EmulatorProcess(PORT_18, tmp_path_factory.mktemp("lh18") / "state", version="1.8").start()
    yield process
    process.stop()
    assert process.proc.poll() is not None


@pytest.fixture
def lh(emulator_17) -> Longhorn:
    """The Longhorn 1.7 emulator, emptied, with no faults and fast operations."""
    emulator_17.client.reset()
    return emulator_17.client


@pytest.fixture
def lh18(emulator_18) -> Longhorn:
    emulator_18.client.reset()
    return emulator_18.client


@pytest.fixture
def spare_emulator(tmp_path):
    """A private emulator (its own state directory) that a test may kill and restart."""
    process = EmulatorProcess(PORT_SPARE, tmp_path / "state")
    yield process
    process.stop(signal.SIGKILL)
    assert process.proc is None or process.proc.poll() is not None


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory) -> SandboxConfig:
    """A real etcd + kube-apiserver + kube-controller-manager 1.20 on ports PORT_BASE+0..2."""
    cfg = SandboxConfig(state_dir=tmp_path_factory.mktemp("kube"), port_base=PORT_BASE)
    ports = [cfg.port(name) for name in ("apiserver", "etcd", "etcd-peer")]
    for attempt in range(3):
        RESERVED.release(*ports)
        wait_for(lambda: all(port_free(p) for p in ports), 60, f"ports {ports} to be free")
        try:
            kube.start(cfg)
            break
        except kube.SandboxError:
            kube.stop(cfg)  # a port was taken between the check and the bind; try again
            if attempt == 2:
                raise
        except BaseException:
            kube.stop(cfg)
            raise
    yield cfg
    kube.stop(cfg)
    assert not [name for name in ("etcd", "kube-apiserver", "kube-controller-manager")
                if procs.running_pid(cfg, name)]
    for port in ports:
        RESERVED.hold(port)
