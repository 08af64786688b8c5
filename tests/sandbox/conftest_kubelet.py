"""Fixtures for the kubelet stand-in's tests: a real control plane, the stand-in, loopback S3.

Loaded as a plugin (`pytest_plugins`) by test_kubelet.py and test_restic_jobs.py,
so the session fixtures exist once. Everything runs on ports 25440-25449 with
its state in a temporary directory, and the teardown asserts that no process
is left behind.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from pathlib import Path

import pytest
from kubernetes import client, config

from sandbox import kube, kubelet, procs, s3
from sandbox.config import SandboxConfig
from tests.polling import wait_for

PORT_BASE = int(os.environ.get("SOTERIA_TEST_PORT_BASE", "27440")) + 20
SERVICES = ("kubelet", "s3", "kube-controller-manager", "kube-apiserver", "etcd")
LONGHORN_DRIVER = "driver.longhorn.io"



def processes_mentioning(text: str) -> list[str]:
    """Command lines of the processes (other than this one) that contain `text`."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        if int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(f"{pid}: {cmdline}")
    return found


def _alive(pid: int) -> bool:
    """True if the process exists and is not a zombie."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@pytest.fixture(scope="session")
def sandbox_cfg(tmp_path_factory) -> SandboxConfig:
    return SandboxConfig(state_dir=tmp_path_factory.mktemp("kubelet-sandbox"), port_base=PORT_BASE)


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
        for name in SERVICES:
            pids[name] = procs.running_pid(cfg, name)
            procs.stop(cfg, name)
    running = {name: pid for name, pid in pids.items() if pid and _alive(pid)}
    assert not running, f"sandbox processes left running: {running}"
    leftovers = processes_mentioning(str(cfg.state_dir))  # pods' sandboxes name their directory
    assert not leftovers, "processes left behind:\n" + "\n".join(leftovers)


@pytest.fixture(scope="session")
def s3_endpoint(kubelet_sandbox) -> str:
    """The loopback S3 endpoint (moto), stopped before the cluster's leftover check."""
    pid = s3.start(kubelet_sandbox)
    yield kubelet_sandbox.s3_endpoint
    s3.stop(kubelet_sandbox)
    assert not _alive(pid), "the S3 server is still running"


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


def job_body(name: str, *, command: list[str] | None = None, args: list[str] | None = None,
             image: str = "busybox:1.36", backoff_limit: int = 0, restart_policy: str = "Never",
             env: list[dict] | None = None, env_from: list[dict] | None = None, mounts: list[dict] | None = None,
             volumes: list[dict] | None = None, pod_spec: dict | None = None) -> dict:
    """A batch/v1 Job with one container, as Soteria's drivers would build it."""
    container = {"name": "main", "image": image}
    for key, value in (("command", command), ("args", args), ("env", env), ("envFrom", env_from),
                       ("volumeMounts", mounts)):
        if value is not None:
            container[key] = value
    spec = {"restartPolicy": restart_policy, "containers": [container], "volumes": volumes or [],
            **(pod_spec or {})}
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"backoffLimit": backoff_limit, "template": {"spec": spec}}}


def claim_volume(name: str, claim: str, read_only: bool = False) -> dict:
    return {"name": name, "persistentVolumeClaim": {"claimName": claim, "readOnly": read_only}}


def run_job(batch, namespace: str, body: dict, timeout: float = 60) -> str:
    """Create the Job and wait until the real Job controller marks it Complete or Failed."""
    name = body["metadata"]["name"]
    batch.create_namespaced_job(namespace, body)

    def finished():
        conditions = batch.read_namespaced_job(name, namespace).status.conditions or []
        return next((c.type for c in conditions if c.type in ("Complete", "Failed") and c.status == "True"), None)

    return wait_for(finished, timeout, f"job {name} to finish")


def job_pods(core, namespace: str, job: str) -> list:
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={job}").items
    return sorted(pods, key=lambda p: p.metadata.creation_timestamp)


def job_log(core, namespace: str, job: str, **kwargs) -> str:
    """The log of the Job's newest pod, read through the apiserver (which asks the stand-in)."""
    pod = job_pods(core, namespace, job)[-1]
    return core.read_namespaced_pod_log(pod.metadata.name, namespace, **kwargs)


def tree_hashes(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under root."""
    return {str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(root.rglob("*")) if path.is_file()}
