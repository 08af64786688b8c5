"""What every Job Soteria runs in a PVC's namespace shares, whatever the driver: its labels,
the restricted security context, the Job itself (run once, no retries, removed after
SOTERIA_JOB_TTL_SECONDS), and the node a ReadWriteOnce claim is mounted on now.

restic's backup and restore Jobs (restic_jobs.py) and the manifest Jobs (manifest_jobs.py)
are built from these.
"""

from __future__ import annotations

from dataclasses import replace

from django.conf import settings

from soteria_site.core import names, workloads

from ..types import Claim

MANAGED_BY = "app.kubernetes.io/managed-by"
DRIVER_LABEL = "soteria.io/driver"
OPERATION_LABEL = "soteria.io/operation"
PVC_LABEL = "soteria.io/pvc"
PVC_ANNOTATION = "soteria.io/pvc"


def labels(driver: str, operation: str, pvc: str) -> dict[str, str]:
    return {MANAGED_BY: "soteria", DRIVER_LABEL: driver, OPERATION_LABEL: operation, PVC_LABEL: names.label_value(pvc)}


def security_contexts() -> tuple[dict, dict]:
    """(pod, container) contexts of the restricted Pod Security Standard: non-root
    (SOTERIA_JOB_RUN_AS_USER/GROUP), no privilege escalation, no capabilities, the runtime's
    seccomp profile, a read-only root filesystem. A claim that is only read is mounted
    read-only, so the kubelet applies no fsGroup ownership change to it."""
    user, group = settings.SOTERIA_JOB_RUN_AS_USER, settings.SOTERIA_JOB_RUN_AS_GROUP
    pod = {"runAsNonRoot": True, "runAsUser": user, "runAsGroup": group, "fsGroup": group,
           "seccompProfile": {"type": "RuntimeDefault"}}
    container = {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True, "runAsNonRoot": True,
                 "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}
    return pod, container


def job_body(name: str, namespace: str, job_labels: dict, annotations: dict, init_containers: list[dict],
             containers: list[dict], volumes: list[dict], node: str = "") -> dict:
    """A Job running `init_containers` in order, then `containers` side by side, once (no retries)."""
    spec: dict = {
        "restartPolicy": "Never", "securityContext": security_contexts()[0], "enableServiceLinks": False,
        "initContainers": init_containers, "containers": containers, "volumes": volumes,
    }
    if settings.SOTERIA_JOB_SERVICE_ACCOUNT:
        spec["serviceAccountName"] = settings.SOTERIA_JOB_SERVICE_ACCOUNT
    else:
        spec["automountServiceAccountToken"] = False
    if settings.SOTERIA_JOB_NODE_SELECTOR:
        spec["nodeSelector"] = dict(settings.SOTERIA_JOB_NODE_SELECTOR)
    if node:  # where a ReadWriteOnce claim is mounted now: only that node can mount it too
        spec["affinity"] = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [node]}]}]}}}
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, "labels": job_labels, "annotations": annotations},
        "spec": {"backoffLimit": 0, "activeDeadlineSeconds": settings.SOTERIA_JOB_ACTIVE_DEADLINE_SECONDS,
                 "ttlSecondsAfterFinished": settings.SOTERIA_JOB_TTL_SECONDS,
                 "template": {"metadata": {"labels": job_labels}, "spec": spec}},
    }


def single_node(claim: Claim) -> bool:
    """Whether only one node can mount the claim at a time (ReadWriteOnce, ReadWriteOncePod)."""
    modes = set(claim.pvc.access_modes)
    return bool(modes & {"ReadWriteOnce", "ReadWriteOncePod"}) and "ReadWriteMany" not in modes


def node_of(namespace: str, claim_name: str) -> str:
    """The node of a running pod that mounts the claim, or "" (one list of the namespace's pods)."""
    for pod in workloads.list_pods(namespace=namespace):
        if claim_name in pod.claims and pod.phase == "Running" and pod.node_name:
            return pod.node_name
    return ""


def node_for(claim: Claim) -> str:
    """Where a Job reading the claim must run: the node it is mounted on when only one node can
    mount it (one list of the namespace's pods, unless looked up already), else "" (anywhere)."""
    if not single_node(claim):
        return ""
    return claim.mounted_on if claim.mounted_on is not None else node_of(*claim.key)


def with_mount_nodes(claims: list[Claim]) -> list[Claim]:
    """The claims, those only one node can mount with `mounted_on` set from one list of each
    namespace's pods: a namespace batch lists its pods once, not once per claim (which at 500
    claims and 500 pods would read the same pods 500 times)."""
    namespaces = {claim.pvc.namespace for claim in claims if single_node(claim)}
    nodes: dict[tuple[str, str], str] = {}
    for namespace in sorted(namespaces):
        for pod in workloads.list_pods(namespace=namespace):
            if pod.phase == "Running" and pod.node_name:
                for name in pod.claims:
                    nodes.setdefault((namespace, name), pod.node_name)
    return [replace(claim, mounted_on=nodes.get(claim.key, "")) if single_node(claim) else claim
            for claim in claims]
