"""Kubernetes Jobs as the kubelet stand-in's tests run them: a Job body shaped like
Soteria's drivers build it, run through the real Job controller, and its pods' logs."""

from __future__ import annotations

import hashlib
from pathlib import Path

from .polling import wait_for
from .ports import TEST_PORT_BASE

# The kubelet stand-in's tests run their own control plane on TEST_PORT_BASE+20..29.
KUBELET_PORT_BASE = TEST_PORT_BASE + 20
KUBELET_SERVICES = ("kubelet", "s3", "kube-controller-manager", "kube-apiserver", "etcd")
LONGHORN_DRIVER = "driver.longhorn.io"


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
