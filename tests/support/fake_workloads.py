"""Deployments, StatefulSets, their pods and autoscalers at the client seam
(backups/clients/workloads.py), over a FakeCluster's claims and volumes.

Workloads are kept as the apiserver's JSON and read through the client module's own
parser, patches are applied as JSON patches (with `test`), and the fake plays the
controllers a swap relies on: scaling a workload creates or removes its pods at once, a
deleted claim releases its volume, and a claim created on a volume pre-bound to it binds.
"""

from __future__ import annotations

import copy
import json
from dataclasses import replace

import pytest

from backups.clients import workloads
from backups.clients.workloads import DEPLOYMENT, STATEFULSET, PodUse
from soteria_site.core import kubernetes
from soteria_site.core.errors import NotFound, UpstreamError

from .fake_cluster import FakeCluster


def _pointer(path: str) -> list[str]:
    return [p.replace("~1", "/").replace("~0", "~") for p in path.split("/")[1:]]


def apply_json_patch(obj: dict, operations: list[dict]) -> dict:
    """RFC 6902's test, add, replace and remove, as the apiserver applies them (all or nothing)."""
    out = copy.deepcopy(obj)
    for op in operations:
        *parents, last = _pointer(op["path"])
        node = out
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.get(part)
            if node is None:
                raise UpstreamError("kubernetes", f"the patch's path {op['path']} does not exist", upstream_status=422)
        key = int(last) if isinstance(node, list) else last
        if op["op"] == "test":
            present = (key < len(node)) if isinstance(node, list) else key in node
            if not present or node[key] != op["value"]:
                raise UpstreamError("kubernetes", f"testing value {op['path']} failed", upstream_status=422)
        elif op["op"] in ("add", "replace"):
            if op["op"] == "replace" and not isinstance(node, list) and key not in node:
                raise UpstreamError("kubernetes", f"replace of missing {op['path']}", upstream_status=422)
            node[key] = copy.deepcopy(op["value"])
        elif op["op"] == "remove":
            del node[key]
    return out


def deployment(namespace: str, name: str, claim: str, replicas: int = 2, **status) -> dict:
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "generation": 1, "annotations": {"deployment.kubernetes.io/revision": "1"}},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}],
                                           "volumes": [{"name": "cfg", "configMap": {"name": "x"}},
                                                       {"name": "data", "persistentVolumeClaim":
                                                        {"claimName": claim}}]}}},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "readyReplicas": replicas, **status}}


def statefulset(namespace: str, name: str, template: str = "data", replicas: int = 1) -> dict:
    return {"metadata": {"namespace": namespace, "name": name, "uid": f"uid-{name}", "resourceVersion": "1",
                         "generation": 1},
            "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": name}},
                     "template": {"metadata": {"labels": {"app": name}},
                                  "spec": {"containers": [{"name": "c", "image": "busybox"}]}},
                     "volumeClaimTemplates": [{"metadata": {"name": template}}]},
            "status": {"observedGeneration": 1, "replicas": replicas, "updatedReplicas": replicas,
                       "currentRevision": f"{name}-1", "updateRevision": f"{name}-1"}}


class FakeApps:
    def __init__(self, cluster: FakeCluster) -> None:
        self.cluster = cluster
        self.objects: dict[tuple[str, str, str], dict] = {}  # (kind, namespace, name) -> JSON
        self.bare_pods: list[PodUse] = []
        self.autoscalers: list[workloads.Autoscaler] = []
        self.patches: list[tuple[str, str, list]] = []
        self.scaled: list[tuple[str, str, int]] = []

    def add(self, kind: str, obj: dict) -> None:
        meta = obj["metadata"]
        self.objects[(kind, meta["namespace"], meta["name"])] = obj

    def obj(self, kind: str, namespace: str, name: str) -> dict:
        return self.objects[(kind, namespace, name)]

    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeApps:
        calls = self.cluster.calls

        def counted(name, fn):
            def wrapper(*args, **kwargs):
                calls[name] += 1
                if name in self.cluster.fail:
                    raise self.cluster.fail[name]
                return fn(*args, **kwargs)
            return wrapper

        for name in ("list_workloads", "get_workload", "patch_workload", "scale_workload", "list_pod_uses",
                     "list_autoscalers", "patch_pv"):
            monkeypatch.setattr(workloads, name, counted(name, getattr(self, name)))
        created, deleted = kubernetes.create_pvc, kubernetes.delete_pvc

        def create_and_bind(namespace, body):
            pvc = created(namespace, body)
            pv = self.cluster.pvs.get(pvc.volume_name or "")
            if pv and (pv.claim_namespace, pv.claim_name) == (namespace, pvc.name):
                self.cluster.pvcs[(namespace, pvc.name)] = pvc = replace(pvc, phase="Bound", capacity=pv.capacity)
                self.cluster.pvs[pv.name] = replace(pv, phase="Bound")
            return pvc

        def delete_and_release(namespace, name):
            pvc = self.cluster.pvcs.get((namespace, name))
            deleted(namespace, name)
            pv = self.cluster.pvs.get(pvc.volume_name or "") if pvc else None
            if pv and (pv.claim_namespace, pv.claim_name) == (namespace, name):
                self.cluster.pvs[pv.name] = replace(pv, phase="Released")
        monkeypatch.setattr(kubernetes, "create_pvc", create_and_bind)
        monkeypatch.setattr(kubernetes, "delete_pvc", delete_and_release)
        return self

    # --- the seam -----------------------------------------------------------------------
    def list_workloads(self, namespace):
        return [workloads._workload(kind, obj) for (kind, ns, _), obj in sorted(self.objects.items())
                if ns == namespace]

    def get_workload(self, kind, namespace, name):
        try:
            return workloads._workload(kind, self.objects[(kind, namespace, name)])
        except KeyError:
            raise NotFound(f"{kind} {name} not found") from None

    def patch_workload(self, kind, namespace, name, operations):
        key = (kind, namespace, name)
        self.patches.append((kind, name, operations))
        patched = apply_json_patch(self.objects[key], operations)
        meta = patched["metadata"]
        meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        if patched["spec"] != self.objects[key]["spec"]:
            meta["generation"] += 1
            patched["status"]["observedGeneration"] = meta["generation"]  # the controller catches up at once
        self.objects[key] = patched
        return workloads._workload(kind, patched)

    def scale_workload(self, kind, namespace, name, replicas):
        obj = self.objects[(kind, namespace, name)]
        self.scaled.append((kind, name, replicas))
        obj["spec"]["replicas"] = replicas
        obj["status"].update(replicas=replicas, updatedReplicas=replicas, readyReplicas=replicas)

    def _pods(self, kind, obj) -> list[PodUse]:
        meta, spec = obj["metadata"], obj["spec"]
        template_claims = tuple(v["persistentVolumeClaim"]["claimName"] for v in spec["template"]["spec"].get(
            "volumes", []) if "persistentVolumeClaim" in v)
        labels = spec["template"]["metadata"]["labels"]
        pods = []
        for ordinal in range(spec["replicas"]):
            if kind == STATEFULSET:
                claims = template_claims + tuple(f"{t['metadata']['name']}-{meta['name']}-{ordinal}"
                                                 for t in spec.get("volumeClaimTemplates", []))
                pods.append(PodUse(meta["namespace"], f"{meta['name']}-{ordinal}", claims, STATEFULSET, meta["name"],
                                   labels))
            else:
                pods.append(PodUse(meta["namespace"], f"{meta['name']}-rs{meta['generation']}-{ordinal}",
                                   template_claims, "ReplicaSet", f"{meta['name']}-rs{meta['generation']}", labels))
        return pods

    def list_pod_uses(self, namespace):
        pods = [p for (kind, ns, _), obj in sorted(self.objects.items()) if ns == namespace
                for p in self._pods(kind, obj)]
        return pods + [p for p in self.bare_pods if p.namespace == namespace]

    def list_autoscalers(self, namespace):
        return [a for a in self.autoscalers if a.namespace == namespace]

    def patch_pv(self, name, operations):
        pv = self.cluster.pvs[name]
        as_json = {"spec": {"persistentVolumeReclaimPolicy": pv.reclaim_policy}}
        if pv.claim_name:
            as_json["spec"]["claimRef"] = {"namespace": pv.claim_namespace, "name": pv.claim_name}
        patched = apply_json_patch(as_json, operations)["spec"]
        ref = patched.get("claimRef") or {}
        changed_ref = (ref.get("namespace"), ref.get("name")) != (pv.claim_namespace, pv.claim_name)
        self.cluster.pvs[name] = replace(pv, reclaim_policy=patched["persistentVolumeReclaimPolicy"],
                                         claim_namespace=ref.get("namespace"), claim_name=ref.get("name"),
                                         phase="Available" if changed_ref else pv.phase)
        self.patches.append(("PersistentVolume", name, operations))
        return self.cluster.pvs[name]

    def record(self, kind, namespace, name) -> dict | None:
        text = (self.objects[(kind, namespace, name)]["metadata"].get("annotations") or {}).get("soteria.io/swap")
        return json.loads(text) if text else None


__all__ = ["DEPLOYMENT", "STATEFULSET", "FakeApps", "apply_json_patch", "deployment", "statefulset"]
