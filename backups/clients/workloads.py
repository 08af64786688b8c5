"""Deployments, StatefulSets, their scale, HorizontalPodAutoscalers, pods' owners and PV
patches: what swapping a restored claim into place needs (docs/swap.md).

The Kubernetes client itself (construction, timeouts, error translation, counting in
soteria_upstream_requests_total) is the kernel's kubernetes.py; this module only adds the
apps/v1 and autoscaling/v1 resources, whose API classes it builds on the kernel's client.
Every write is a JSON patch (RFC 6902) that starts with `test` operations on the values it
was planned from, so a workload or volume changed by someone else in the meantime is
refused by the apiserver (a 422, raised as UpstreamError) instead of overwritten.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kubernetes import client as k8s

from soteria_site.core.errors import InvalidInput
from soteria_site.core.kubernetes import Pv, _api_client, _call, _core, _pv, list_pages

DEPLOYMENT, STATEFULSET = "Deployment", "StatefulSet"
KINDS = (DEPLOYMENT, STATEFULSET)
JSON_PATCH = "application/json-patch+json"


@dataclass(frozen=True)
class ClaimVolume:
    """A pod template's volume that mounts a claim: its index in `volumes`, its name, the claim."""

    index: int
    name: str
    claim: str


@dataclass(frozen=True)
class Workload:
    kind: str  # Deployment | StatefulSet
    namespace: str
    name: str
    uid: str
    resource_version: str
    generation: int
    replicas: int  # spec.replicas
    annotations: dict[str, str] = field(default_factory=dict)
    selector: dict[str, str] = field(default_factory=dict)  # spec.selector.matchLabels
    claim_volumes: tuple[ClaimVolume, ...] = ()  # the pod template's claim volumes
    claim_templates: tuple[str, ...] = ()  # StatefulSet volumeClaimTemplates' names
    paused: bool = False
    # status
    observed_generation: int = 0
    status_replicas: int = 0
    updated_replicas: int = 0
    ready_replicas: int = 0
    current_revision: str = ""
    update_revision: str = ""
    deleting: bool = False

    @property
    def settled(self) -> bool:
        """Whether its controller has caught up with its spec: no rollout in progress."""
        if self.deleting or self.paused or self.observed_generation < self.generation:
            return False
        if self.status_replicas != self.replicas or self.updated_replicas != self.replicas:
            return False
        return self.kind != STATEFULSET or not self.update_revision or self.current_revision == self.update_revision


@dataclass(frozen=True)
class PodUse:
    """A pod and what it mounts, with its controller (kind, name) if any."""

    namespace: str
    name: str
    claims: tuple[str, ...]
    owner_kind: str
    owner_name: str
    labels: dict[str, str] = field(default_factory=dict)
    phase: str = "Running"

    @property
    def ended(self) -> bool:
        """A pod that has ended (Succeeded or Failed) holds no mount any more."""
        return self.phase in ("Succeeded", "Failed")


@dataclass(frozen=True)
class Autoscaler:
    namespace: str
    name: str
    target_kind: str
    target_name: str


def _int(value) -> int:
    try:
        return int(value or 0)
    except (TypeError, ValueError):
        return 0


def _workload(kind: str, obj: dict) -> Workload:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    pod_spec = (spec.get("template") or {}).get("spec") or {}
    volumes = tuple(ClaimVolume(i, v.get("name", ""), (v.get("persistentVolumeClaim") or {}).get("claimName", ""))
                    for i, v in enumerate(pod_spec.get("volumes") or ()) if v.get("persistentVolumeClaim"))
    templates = tuple((t.get("metadata") or {}).get("name", "") for t in spec.get("volumeClaimTemplates") or ())
    replicas = spec.get("replicas")
    return Workload(
        kind=kind, namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
        resource_version=meta.get("resourceVersion", ""), generation=_int(meta.get("generation")),
        replicas=1 if replicas is None else _int(replicas), annotations=meta.get("annotations") or {},
        selector=(spec.get("selector") or {}).get("matchLabels") or {}, claim_volumes=volumes,
        claim_templates=templates, paused=bool(spec.get("paused")),
        observed_generation=_int(status.get("observedGeneration")), status_replicas=_int(status.get("replicas")),
        updated_replicas=_int(status.get("updatedReplicas")), ready_replicas=_int(status.get("readyReplicas")),
        current_revision=status.get("currentRevision") or "", update_revision=status.get("updateRevision") or "",
        deleting=bool(meta.get("deletionTimestamp")))


def _pod_use(obj: dict) -> PodUse:
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    owner = next((o for o in meta.get("ownerReferences") or () if o.get("controller")), {})
    claims = tuple((v.get("persistentVolumeClaim") or {}).get("claimName", "") for v in spec.get("volumes") or ()
                   if v.get("persistentVolumeClaim"))
    return PodUse(namespace=meta.get("namespace", ""), name=meta.get("name", ""), claims=claims,
                  owner_kind=owner.get("kind", ""), owner_name=owner.get("name", ""), labels=meta.get("labels") or {},
                  phase=(obj.get("status") or {}).get("phase") or "Pending")


def _apps() -> k8s.AppsV1Api:
    return k8s.AppsV1Api(_api_client())


def _autoscaling() -> k8s.AutoscalingV1Api:
    return k8s.AutoscalingV1Api(_api_client())


def _require_kind(kind: str) -> None:
    if kind not in KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(KINDS)}", field="workload")


# --- Reading ----------------------------------------------------------------------------
def list_workloads(namespace: str) -> list[Workload]:
    """Every Deployment and StatefulSet of a namespace (two lists, paginated)."""
    deployments = list_pages("deployments.list", _apps().list_namespaced_deployment, namespace)
    statefulsets = list_pages("statefulsets.list", _apps().list_namespaced_stateful_set, namespace)
    return ([_workload(DEPLOYMENT, item) for page in deployments for item in page]
            + [_workload(STATEFULSET, item) for page in statefulsets for item in page])


def get_workload(kind: str, namespace: str, name: str) -> Workload:
    _require_kind(kind)
    if kind == DEPLOYMENT:
        return _workload(kind, _call("deployments.get", _apps().read_namespaced_deployment, name, namespace))
    return _workload(kind, _call("statefulsets.get", _apps().read_namespaced_stateful_set, name, namespace))


def list_pod_uses(namespace: str) -> list[PodUse]:
    """The pods of a namespace, with the claims they mount and their controller (one list)."""
    pages = list_pages("pods.list", _core().list_namespaced_pod, namespace)
    return [_pod_use(item) for page in pages for item in page]


def list_autoscalers(namespace: str) -> list[Autoscaler]:
    """The namespace's HorizontalPodAutoscalers and what each scales (one list)."""
    pages = list_pages("hpas.list", _autoscaling().list_namespaced_horizontal_pod_autoscaler, namespace)
    return [Autoscaler(namespace=(item.get("metadata") or {}).get("namespace", ""),
                       name=(item.get("metadata") or {}).get("name", ""),
                       target_kind=((item.get("spec") or {}).get("scaleTargetRef") or {}).get("kind", ""),
                       target_name=((item.get("spec") or {}).get("scaleTargetRef") or {}).get("name", ""))
            for page in pages for item in page]


# --- Writing ------------------------------------------------------------------------------
def patch_workload(kind: str, namespace: str, name: str, operations: list[dict]) -> Workload:
    """Apply a JSON patch to a Deployment or StatefulSet (its `test` operations guard it)."""
    _require_kind(kind)
    if kind == DEPLOYMENT:
        fn, operation = _apps().patch_namespaced_deployment, "deployments.patch"
    else:
        fn, operation = _apps().patch_namespaced_stateful_set, "statefulsets.patch"
    return _workload(kind, _call(operation, fn, name, namespace, operations, _content_type=JSON_PATCH))


def scale_workload(kind: str, namespace: str, name: str, replicas: int) -> None:
    """Set a workload's replicas through its scale subresource (what `kubectl scale` does)."""
    _require_kind(kind)
    if kind == DEPLOYMENT:
        fn, operation = _apps().patch_namespaced_deployment_scale, "deployments.scale"
    else:
        fn, operation = _apps().patch_namespaced_stateful_set_scale, "statefulsets.scale"
    _call(operation, fn, name, namespace, [{"op": "replace", "path": "/spec/replicas", "value": replicas}],
          _content_type=JSON_PATCH)


def patch_pv(name: str, operations: list[dict]) -> Pv:
    """Apply a JSON patch to a PersistentVolume (reclaim policy, claimRef)."""
    return _pv(_call("pvs.patch", _core().patch_persistent_volume, name, operations, _content_type=JSON_PATCH))
