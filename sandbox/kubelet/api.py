"""The stand-in's window on the Kubernetes API: plain dicts in and out.

Every call goes through the official client with `_preload_content=False`, so
objects stay in their wire form (camelCase, as the API reference spells them)
and a call never trips over the client's model validation. Every call has a
timeout. A missing object is None; other failures raise ApiError.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

ApiError = ApiException
# Anything a call can fail with; a kubelet retries them all.
API_ERRORS = (ApiException, HTTPError, OSError)
STRATEGIC_MERGE = "application/strategic-merge-patch+json"
MERGE = "application/merge-patch+json"
TIMEOUT = 10
LEASE_NAMESPACE = "kube-node-lease"


def now() -> str:
    """The current time as the API writes Time fields (seconds, UTC)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def now_micro() -> str:
    """The current time as the API writes MicroTime fields (a Lease's renewTime)."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _json(resp) -> dict:
    return json.loads(resp.data)


class Api:
    def __init__(self, kubeconfig: Path):
        self.client = config.new_client_from_config(str(kubeconfig))
        self.core = client.CoreV1Api(self.client)
        self.coordination = client.CoordinationV1Api(self.client)
        self.storage = client.StorageV1Api(self.client)

    def _get(self, call, *args) -> dict | None:
        try:
            return _json(call(*args, _preload_content=False, _request_timeout=TIMEOUT))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    # Objects a pod refers to ------------------------------------------------
    def secret(self, namespace: str, name: str) -> dict | None:
        return self._get(self.core.read_namespaced_secret, name, namespace)

    def config_map(self, namespace: str, name: str) -> dict | None:
        return self._get(self.core.read_namespaced_config_map, name, namespace)

    def pvc(self, namespace: str, name: str) -> dict | None:
        return self._get(self.core.read_namespaced_persistent_volume_claim, name, namespace)

    def pv(self, name: str) -> dict | None:
        return self._get(self.core.read_persistent_volume, name)

    # Pods -------------------------------------------------------------------
    def list_pods(self) -> tuple[list[dict], str]:
        """Every pod in the cluster and the list's resourceVersion."""
        data = _json(self.core.list_pod_for_all_namespaces(_preload_content=False, _request_timeout=60))
        return data["items"], data["metadata"]["resourceVersion"]

    def watch_pods(self, resource_version: str, timeout: int) -> Iterator[tuple[str, dict]]:
        """(type, object) events after resource_version; ends when the server closes the watch.

        An ERROR event (410 Gone for an expired resourceVersion) raises ApiError.
        """
        resp = self.core.list_pod_for_all_namespaces(
            watch=True, resource_version=resource_version, allow_watch_bookmarks=True,
            timeout_seconds=timeout, _preload_content=False, _request_timeout=(TIMEOUT, timeout + 30))
        try:
            for line in resp:
                if not line.strip():
                    continue
                event = json.loads(line)
                if event["type"] == "ERROR":
                    status = event["object"]
                    raise ApiException(status=status.get("code"), reason=status.get("message"))
                yield event["type"], event["object"]
        finally:
            resp.release_conn()

    def bind(self, pod: dict, node: str) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding",
                "metadata": {"name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": node}}
        self.core.create_namespaced_pod_binding(meta["name"], meta["namespace"], body,
                                                _preload_content=False, _request_timeout=TIMEOUT)

    def patch_pod_status(self, pod: dict, status: dict) -> None:
        """Strategic-merge `status` into the pod, only if it is still the same pod (uid)."""
        meta = pod["metadata"]
        body = {"metadata": {"uid": meta["uid"]}, "status": status}
        self.core.patch_namespaced_pod_status(meta["name"], meta["namespace"], body, _content_type=STRATEGIC_MERGE,
                                              _preload_content=False, _request_timeout=TIMEOUT)

    def delete_pod_now(self, pod: dict) -> None:
        """Confirm a pod's termination as a kubelet does: delete it with grace 0 (uid-guarded)."""
        meta = pod["metadata"]
        try:
            self.core.delete_namespaced_pod(meta["name"], meta["namespace"], grace_period_seconds=0,
                                            body={"gracePeriodSeconds": 0, "preconditions": {"uid": meta["uid"]}},
                                            _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a new pod of the same name
                raise

    # Claims, volumes and classes, for the provisioner -----------------------
    # Lists read the apiserver's watch cache (resourceVersion "0"): cheap enough to poll.
    def list_claims(self) -> list[dict]:
        return _json(self.core.list_persistent_volume_claim_for_all_namespaces(
            resource_version="0", _preload_content=False, _request_timeout=TIMEOUT))["items"]

    def list_pvs(self) -> list[dict]:
        return _json(self.core.list_persistent_volume(resource_version="0", _preload_content=False,
                                                      _request_timeout=TIMEOUT))["items"]

    def list_storage_classes(self) -> list[dict]:
        return _json(self.storage.list_storage_class(resource_version="0", _preload_content=False,
                                                     _request_timeout=TIMEOUT))["items"]

    def list_namespaced_pods(self, namespace: str) -> list[dict]:
        return _json(self.core.list_namespaced_pod(namespace, resource_version="0", _preload_content=False,
                                                   _request_timeout=TIMEOUT))["items"]

    def create_pv(self, body: dict) -> bool:
        """Create a PersistentVolume; False when one of that name exists already."""
        try:
            self.core.create_persistent_volume(body, _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status == 409:
                return False
            raise
        return True

    def delete_pv(self, pv: dict) -> None:
        """Delete a PersistentVolume, only if it is still the same one (uid); gone already is fine."""
        meta = pv["metadata"]
        try:
            self.core.delete_persistent_volume(meta["name"], body={"preconditions": {"uid": meta["uid"]}},
                                               _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status not in (404, 409):
                raise

    # The node and its lease -------------------------------------------------
    def node(self, name: str) -> dict | None:
        return self._get(self.core.read_node, name)

    def create_node(self, body: dict) -> None:
        self.core.create_node(body, _preload_content=False, _request_timeout=TIMEOUT)

    def patch_node(self, name: str, body: dict) -> None:
        self.core.patch_node(name, body, _content_type=STRATEGIC_MERGE, _preload_content=False,
                             _request_timeout=TIMEOUT)

    def patch_node_status(self, name: str, status: dict) -> None:
        self.core.patch_node_status(name, {"status": status}, _content_type=STRATEGIC_MERGE,
                                    _preload_content=False, _request_timeout=TIMEOUT)

    def renew_lease(self, node: str, duration: int) -> None:
        """Create or renew the node's Lease in kube-node-lease."""
        spec = {"holderIdentity": node, "leaseDurationSeconds": duration, "renewTime": now_micro()}
        try:
            self.coordination.patch_namespaced_lease(node, LEASE_NAMESPACE, {"spec": spec}, _content_type=MERGE,
                                                     _preload_content=False, _request_timeout=TIMEOUT)
        except ApiException as exc:
            if exc.status != 404:
                raise
            body = {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                    "metadata": {"name": node, "namespace": LEASE_NAMESPACE}, "spec": spec}
            self.coordination.create_namespaced_lease(LEASE_NAMESPACE, body, _preload_content=False,
                                                      _request_timeout=TIMEOUT)
