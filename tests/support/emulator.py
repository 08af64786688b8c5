"""The Longhorn emulator as the sandbox's tests drive it: a tiny client for its API
and the emulator as a real subprocess (`python -m sandbox.longhorn`) on a loopback port.

Its ports are TEST_PORT_BASE+10..19 (tests/support/ports.py), held from import (collection)
time on and released just before a server binds one.
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

from .polling import wait_for
from .ports import TEST_PORT_BASE, PortReservation, port_free

REPO = Path(__file__).resolve().parents[2]
PORT_BASE = TEST_PORT_BASE + 10
PORT_17, PORT_18, PORT_SPARE, PORT_KUBE = PORT_BASE + 3, PORT_BASE + 6, PORT_BASE + 7, PORT_BASE + 9
FAST = 0.5  # op_seconds for most tests

RESERVED = PortReservation(range(PORT_BASE, PORT_BASE + 10))


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
        assert self.post("/sandbox/config", {"op_seconds": op_seconds, "call_delay_seconds": 0}).status_code == 200


class EmulatorProcess:
    """`python -m sandbox.longhorn` as a child process in its own session."""

    def __init__(self, port: int, state_dir: Path, version: str = "1.7", op_seconds: float = FAST,
                 kubeconfig: Path | None = None, namespace: str = "", etcd_url: str | None = None):
        self.port, self.state_dir, self.version = port, state_dir, version
        self.op_seconds, self.kubeconfig, self.etcd_url = op_seconds, kubeconfig, etcd_url
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
        if self.etcd_url:
            argv += ["--etcd-url", self.etcd_url]
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


def error_body(response, status: int, message_part: str) -> dict:
    """Assert a Longhorn error answer and return its body."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "status", "code", "message", "detail", "links", "actions"}
    assert body["type"] == "error" and body["status"] == status and body["detail"] == "" and body["actions"] == {}
    assert body["code"] == {500: "Internal Server Error", 404: "Not Found"}[status]
    assert body["links"]["self"] == response.url.split("?")[0]
    assert message_part in body["message"], body["message"]
    return body
