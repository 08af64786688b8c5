"""Fixtures for the sandbox's own tests: the Longhorn emulator as a real subprocess, a real
kube-apiserver, and for the kubelet stand-in's tests a real control plane, the stand-in and
loopback S3 (helpers in tests/support/emulator.py and tests/support/jobs.py).

Ports are offsets from the session's SOTERIA_TEST_PORT_BASE (tests/support/ports.py):
base+10..19 for the emulator's tests, base+20..29 for the kubelet's, so sessions with
bases 1000 apart never meet. Teardown stops every process it started and checks that
none is left.
"""

from __future__ import annotations

import signal
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from sandbox import kube, kubelet, procs, s3
from sandbox.config import SandboxConfig
from tests.support.emulator import PORT_17, PORT_18, PORT_BASE, PORT_SPARE, RESERVED, EmulatorProcess, Longhorn
from tests.support.jobs import KUBELET_PORT_BASE, KUBELET_SERVICES, LONGHORN_DRIVER
from tests.support.polling import wait_for
from tests.support.ports import port_free
from tests.support.processes import alive, processes_mentioning


@pytest.fixture(autouse=True)
def _isolated_upstreams():
    """These tests drive the sandbox's own programs, never Soteria's clients: skip the repo-wide reset."""
    yield


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


# --- the kubelet stand-in's control plane -------------------------------------------
@pytest.fixture(scope="session")
def sandbox_cfg(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(state_dir=tmp_path_factory.mktemp("kubelet-sandbox"), port_base=KUBELET_PORT_BASE)


@pytest.fixture(scope="session")
def kubelet_sandbox(sandbox_cfg):
    """etcd, kube-apiserver, kube-controller-manager and the kubelet stand-in, for the session."""
    cfg = sandbox_cfg
    pids = {}
    try:
        kube.start(cfg)
        kubelet.start(cfg)
        yield cfg
    finally:
        for name in KUBELET_SERVICES:
            pids[name] = procs.running_pid(cfg, name)
            procs.stop(cfg, name)
    running = {name: pid for name, pid in pids.items() if pid and alive(pid)}
    assert not running, f"sandbox processes left running: {running}"
    leftovers = processes_mentioning(str(cfg.state_dir))  # pods' sandboxes name their directory
    assert not leftovers, "processes left behind:\n" + "\n".join(leftovers)


@pytest.fixture(scope="session")
def s3_endpoint(kubelet_sandbox) -> str:
    """The loopback S3 endpoint (moto), stopped before the cluster's leftover check."""
    pid = s3.start(kubelet_sandbox)
    yield kubelet_sandbox.s3_endpoint
    s3.stop(kubelet_sandbox)
    assert not alive(pid), "the S3 server is still running"


@pytest.fixture(scope="session")
def kube_client(kubelet_sandbox) -> client.ApiClient:
    return config.new_client_from_config(str(kubelet_sandbox.kubeconfig))


@pytest.fixture(scope="session")
def core_v1(kube_client) -> client.CoreV1Api:
    return client.CoreV1Api(kube_client)


@pytest.fixture(scope="session")
def batch_v1(kube_client) -> client.BatchV1Api:
    return client.BatchV1Api(kube_client)


@pytest.fixture
def scratch_ns(core_v1) -> str:
    name = f"t-{uuid.uuid4().hex[:8]}"
    core_v1.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    core_v1.delete_namespace(name)


@pytest.fixture
def static_pvc(core_v1, kubelet_sandbox, scratch_ns):
    """Factory of PVCs bound to static PVs: static_pvc(claim, longhorn=HANDLE | host_path=PATH)."""
    created = []

    def make(claim: str, *, longhorn: str | None = None, host_path: Path | None = None) -> str:
        pv = f"{scratch_ns}-{claim}"
        source = ({"csi": {"driver": LONGHORN_DRIVER, "volumeHandle": longhorn, "fsType": "ext4"}}
                  if longhorn else {"hostPath": {"path": str(host_path), "type": "DirectoryOrCreate"}})
        core_v1.create_persistent_volume({
            "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv},
            "spec": {"capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
                     "persistentVolumeReclaimPolicy": "Retain", "storageClassName": "sandbox-static",
                     "claimRef": {"namespace": scratch_ns, "name": claim}, **source}})
        created.append(pv)
        core_v1.create_namespaced_persistent_volume_claim(scratch_ns, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": claim},
            "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "sandbox-static", "volumeName": pv,
                     "resources": {"requests": {"storage": "1Gi"}}}})
        wait_for(lambda: core_v1.read_namespaced_persistent_volume_claim(claim, scratch_ns).status.phase == "Bound",
                 what=f"PVC {claim} to bind")
        return claim

    yield make
    for pv in created:
        core_v1.delete_persistent_volume(pv)
