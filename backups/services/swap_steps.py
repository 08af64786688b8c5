"""The steps of a swap and of its undo (docs/swap.md), each one idempotent.

`run(step, workload, record)` looks at the cluster first and does nothing when the step's
outcome is already there (it answers False: "already so"), so an undo can start from
wherever a swap stopped. A step that finds something it did not expect (a claim on another
volume, a volume that would be deleted with its claim) refuses with Conflict rather than
guess. Waits are bounded by SOTERIA_SWAP_WAIT_SECONDS.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from django.conf import settings

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, UpstreamError, UpstreamTimeout

from ..clients import workloads
from ..clients.workloads import STATEFULSET, Workload

RECORD = "soteria.io/swap"
RECORD_POINTER = "/metadata/annotations/soteria.io~1swap"
POLL_SECONDS = 0.5
# Seams for the unit tests' clock.
monotonic: Callable[[], float] = time.monotonic
sleep: Callable[[float], None] = time.sleep


def run(step, workload: Workload, record: dict) -> bool:
    """Carry out one step; True if it changed something, False if it was already so."""
    return ACTIONS[step.action](workload, record, **step.args)


def _wait(what: str, done: Callable[[], object]) -> None:
    deadline = monotonic() + settings.SOTERIA_SWAP_WAIT_SECONDS
    while True:
        outcome = done()
        if outcome is True:
            return
        if monotonic() >= deadline:
            raise UpstreamTimeout("kubernetes", f"{what} did not happen within SOTERIA_SWAP_WAIT_SECONDS "
                                                f"({settings.SOTERIA_SWAP_WAIT_SECONDS} s): {outcome}")
        sleep(POLL_SECONDS)


def owned(workload: Workload, pod: workloads.PodUse) -> bool:
    """Whether a pod is the workload's: a StatefulSet's own, or of one of a Deployment's
    ReplicaSets (named after it, carrying its selector's labels)."""
    if workload.kind == STATEFULSET:
        return pod.owner_kind == STATEFULSET and pod.owner_name == workload.name
    return (pod.owner_kind == "ReplicaSet" and pod.owner_name.startswith(f"{workload.name}-")
            and all(pod.labels.get(k) == v for k, v in workload.selector.items()))


# --- The workload ---------------------------------------------------------------------------
GUARDED_ATTEMPTS = 5


def _guarded(workload: Workload, operations: Callable[[Workload], list[dict] | None]) -> bool:
    """Patch the workload's metadata under a resourceVersion guard, read afresh each attempt:
    its controller updates the status (and so the resourceVersion) often, which is not a
    reason to give up. `operations(current)` answers None when there is nothing to do."""
    for attempt in range(GUARDED_ATTEMPTS):
        current = workloads.get_workload(workload.kind, workload.namespace, workload.name)
        ops = operations(current)
        if ops is None:
            return False
        guard = {"op": "test", "path": "/metadata/resourceVersion", "value": current.resource_version}
        try:
            workloads.patch_workload(workload.kind, workload.namespace, workload.name, [guard, *ops])
            return True
        except UpstreamError as exc:
            if exc.upstream_status not in (400, 422) or attempt == GUARDED_ATTEMPTS - 1:
                raise
    return True


def _record(workload: Workload, record: dict) -> bool:
    value = json.dumps(record, sort_keys=True)

    def operations(current: Workload):
        if RECORD in current.annotations:
            raise Conflict(f"{workload.kind} {workload.namespace}/{workload.name} already carries a swap record; "
                           "undo that swap first", code="swap_in_place")
        if current.annotations:
            return [{"op": "add", "path": RECORD_POINTER, "value": value}]
        return [{"op": "add", "path": "/metadata/annotations", "value": {RECORD: value}}]
    return _guarded(workload, operations)


def _scale(workload: Workload, record: dict, replicas: int) -> bool:
    current = workloads.get_workload(workload.kind, workload.namespace, workload.name)
    if current.replicas == replicas:
        return False
    workloads.scale_workload(workload.kind, workload.namespace, workload.name, replicas)
    return True


def _wait_ready(workload: Workload, record: dict, replicas: int) -> bool:
    def ready():
        current = workloads.get_workload(workload.kind, workload.namespace, workload.name)
        if current.settled and current.ready_replicas >= replicas:
            return True
        return (f"{current.ready_replicas}/{replicas} ready, {current.updated_replicas} updated, generation "
                f"{current.observed_generation}/{current.generation} observed")
    _wait(f"{workload.kind} {workload.namespace}/{workload.name} running {replicas} ready replicas", ready)
    return True


def _wait_pods_gone(workload: Workload, record: dict, claim: str) -> bool:
    def gone():
        left = [p.name for p in workloads.list_pod_uses(workload.namespace) if owned(workload, p)]
        return True if not left else f"pods still there: {', '.join(sorted(left)[:5])}"
    _wait(f"the pods of {workload.kind} {workload.namespace}/{workload.name} going away", gone)
    return True


def _point_volume(workload: Workload, record: dict, index: int, volume: str, old: str, new: str) -> bool:
    current = workloads.get_workload(workload.kind, workload.namespace, workload.name)
    entry = next((v for v in current.claim_volumes if v.index == index and v.name == volume), None)
    if entry is not None and entry.claim == new:
        return False
    if entry is None or entry.claim != old:
        raise Conflict(f"volume {volume} of {workload.kind} {workload.namespace}/{workload.name} no longer mounts "
                       f"PVC {old} (someone changed the pod template); Soteria leaves it as it is",
                       code="workload_changed")
    path = f"/spec/template/spec/volumes/{index}"
    workloads.patch_workload(workload.kind, workload.namespace, workload.name, [
        {"op": "test", "path": f"{path}/name", "value": volume},
        {"op": "test", "path": f"{path}/persistentVolumeClaim/claimName", "value": old},
        {"op": "replace", "path": f"{path}/persistentVolumeClaim/claimName", "value": new},
    ])
    return True


def _forget(workload: Workload, record: dict) -> bool:
    # Guarded by the resourceVersion, not by the value: the apiserver compares a `test` of a
    # string by its JSON text, and Go escapes characters (&, <, >) that Python does not.
    return _guarded(workload, lambda current: [{"op": "remove", "path": RECORD_POINTER}]
                    if RECORD in current.annotations else None)


# --- Volumes and claims ------------------------------------------------------------------------
def _retain_pv(workload: Workload, record: dict, pv: str, policy: str) -> bool:
    current = kubernetes.get_pv(pv)
    if current.reclaim_policy == policy:
        return False
    workloads.patch_pv(pv, [{"op": "replace", "path": "/spec/persistentVolumeReclaimPolicy", "value": policy}])
    return True


def _delete_pvc(workload: Workload, record: dict, pvc: str, pv: str, unless_pv: str = "") -> bool:
    namespace = workload.namespace
    current = kubernetes.find_pvc(namespace, pvc)
    if current is None:
        return False
    if current.volume_name != pv:
        if unless_pv and current.volume_name == unless_pv:
            return False  # the claim is already back on its own volume
        raise Conflict(f"PVC {namespace}/{pvc} is on PV {current.volume_name or 'none'}, not {pv}; Soteria will not "
                       "delete it", code="claim_changed")
    if kubernetes.get_pv(pv).reclaim_policy != "Retain":
        raise Conflict(f"PV {pv} is not Retain: deleting PVC {namespace}/{pvc} could delete its data",
                       code="volume_not_retained")
    kubernetes.delete_pvc(namespace, pvc)

    def gone():
        if kubernetes.find_pvc(namespace, pvc) is None:
            return True
        naming = sorted(p.name for p in workloads.list_pod_uses(namespace) if pvc in p.claims)
        # The pvc-protection controller keeps a claim while a pod names it; on older Kubernetes
        # versions (1.20 among them) that includes pods that have ended (a finished Job's).
        return (f"it is still there; pods naming it: {', '.join(naming[:5])} (delete them, or their Jobs)"
                if naming else "it is still there")
    _wait(f"the deletion of PVC {namespace}/{pvc}", gone)
    return True


def _bind_pv(workload: Workload, record: dict, pv: str, claim: str) -> bool:
    namespace = workload.namespace
    existing = kubernetes.find_pvc(namespace, claim)
    if existing is not None:
        if existing.volume_name == pv:
            return False
        raise Conflict(f"PVC {namespace}/{claim} exists on PV {existing.volume_name or 'none'}; PV {pv} cannot be "
                       "bound to that name", code="claim_changed")
    current = kubernetes.get_pv(pv)
    if (current.claim_namespace, current.claim_name) == (namespace, claim) and current.phase == "Available":
        return False
    if current.reclaim_policy != "Retain":
        raise Conflict(f"PV {pv} is not Retain; Soteria rebinds only retained volumes", code="volume_not_retained")
    ref = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": namespace, "name": claim}
    guard = ([{"op": "test", "path": "/spec/claimRef/name", "value": current.claim_name}]
             if current.claim_name else [])
    op = "replace" if current.claim_name else "add"
    workloads.patch_pv(pv, guard + [{"op": op, "path": "/spec/claimRef", "value": ref}])
    return True


def _create_pvc(workload: Workload, record: dict, pvc: str, pv: str, spec: str) -> bool:
    namespace = workload.namespace
    existing = kubernetes.find_pvc(namespace, pvc)
    created = False
    if existing is None:
        claim, volume = record[spec], kubernetes.get_pv(pv)
        kubernetes.create_pvc(namespace, {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": pvc, "namespace": namespace, "labels": dict(claim.get("labels") or {}),
                         "annotations": dict(claim.get("annotations") or {})},
            "spec": {"accessModes": list(claim["access_modes"]), "storageClassName": volume.storage_class or "",
                     "resources": {"requests": {"storage": claim["request"]}}, "volumeName": pv},
        })
        created = True
    elif existing.volume_name != pv:
        raise Conflict(f"PVC {namespace}/{pvc} exists on PV {existing.volume_name or 'none'}, not {pv}",
                       code="claim_changed")

    def bound():
        current = kubernetes.find_pvc(namespace, pvc)
        return True if current is not None and current.phase == "Bound" else \
            f"it is {current.phase if current else 'gone'}"
    _wait(f"PVC {namespace}/{pvc} binding to PV {pv}", bound)
    return created


ACTIONS = {"record": _record, "scale": _scale, "wait_pods_gone": _wait_pods_gone, "wait_ready": _wait_ready,
           "point_volume": _point_volume, "forget": _forget, "retain_pv": _retain_pv, "delete_pvc": _delete_pvc,
           "bind_pv": _bind_pv, "create_pvc": _create_pvc}
