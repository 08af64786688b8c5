"""Plays the `rancher.io/local-path` provisioner for the sandbox's node.

Every INTERVAL seconds it reads the claims, volumes and storage classes and:

- gives a PersistentVolume to each claim that needs one: a claim of a class
  whose provisioner is `rancher.io/local-path`, Pending, without
  `spec.volumeName` and not being deleted. For a WaitForFirstConsumer class it
  waits until the claim has a consumer on this node (the scheduler's
  `volume.kubernetes.io/selected-node` annotation, or, since the stand-in
  schedules pods itself, a pod using the claim that is bound to the node).
  The PV is `pvc-<claim uid>`, a hostPath directory under the local volumes
  directory, pre-bound to the claim (claimRef with its uid), so the real PV
  controller binds the two;
- deletes each PV it provisioned (annotation `pv.kubernetes.io/provisioned-by`)
  whose reclaim policy is Delete once it is Released, after removing its
  directory. It removes only directories inside the local volumes directory.

It keeps no state between passes beyond what it has already logged: a PV that
exists already (409) counts as provisioned, and any error is logged and the
claim or volume is tried again on the next pass.
"""

from __future__ import annotations

import logging
import shutil
import threading
from pathlib import Path

from .api import API_ERRORS, Api

log = logging.getLogger(__name__)

PROVISIONER = "rancher.io/local-path"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
BETA_CLASS = "volume.beta.kubernetes.io/storage-class"
WAIT_FOR_FIRST_CONSUMER = "WaitForFirstConsumer"
INTERVAL = 1.0


def claim_class(claim: dict) -> str | None:
    return claim["spec"].get("storageClassName") or (claim["metadata"].get("annotations") or {}).get(BETA_CLASS)


def needs_volume(claim: dict) -> bool:
    return (not claim["metadata"].get("deletionTimestamp") and not claim["spec"].get("volumeName")
            and (claim.get("status") or {}).get("phase", "Pending") == "Pending")


def pv_name(claim: dict) -> str:
    return f"pvc-{claim['metadata']['uid']}"


def pv_body(claim: dict, storage_class: dict, node: str, path: Path) -> dict:
    """The volume the real provisioner would create for `claim` on `node`, at `path`."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": pv_name(claim), "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec.get("accessModes") or ["ReadWriteOnce"],
            "storageClassName": storage_class["metadata"]["name"],
            "persistentVolumeReclaimPolicy": storage_class.get("reclaimPolicy") or "Delete",
            "volumeMode": "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "hostPath": {"path": str(path), "type": "DirectoryOrCreate"},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


def uses_claim(pod: dict, claim: str) -> bool:
    return any((vol.get("persistentVolumeClaim") or {}).get("claimName") == claim
               for vol in pod["spec"].get("volumes") or [])


class Provisioner:
    def __init__(self, api: Api, node: str, volumes_dir: Path, interval: float = INTERVAL):
        self.api = api
        self.node = node
        self.volumes_dir = volumes_dir
        self.interval = interval
        self._said: set[tuple[str, str]] = set()  # (object uid, message) already logged
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="provisioner", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 15)

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.sync()
            except API_ERRORS as exc:  # the apiserver may be restarting; the next pass retries
                log.warning("provisioner pass failed: %s", exc)
            except Exception:  # noqa: BLE001 - a bug; log it, keep the kubelet running
                log.exception("provisioner pass failed")
            self._stop.wait(self.interval)

    def sync(self) -> None:
        """One pass: provision what waits for a volume, delete what was released."""
        classes = {sc["metadata"]["name"]: sc for sc in self.api.list_storage_classes()
                   if sc.get("provisioner") == PROVISIONER}
        if classes:
            claims = [c for c in self.api.list_claims() if claim_class(c) in classes and needs_volume(c)]
            pods: dict[str, list[dict]] = {}
            for claim in claims:
                self._guarded(claim, self._provision, claim, classes[claim_class(claim)], pods)
        for pv in self.api.list_pvs():
            if self._releasable(pv):
                self._guarded(pv, self._delete, pv)

    def _guarded(self, obj: dict, action, *args) -> None:
        """Run `action`; an error with one object is logged and retried next pass, not raised."""
        try:
            action(*args)
        except API_ERRORS as exc:
            self._say(obj, logging.WARNING, f"{action.__name__.strip('_')} failed, will retry: {exc}")
        except Exception as exc:  # noqa: BLE001 - one bad object must not stop the others
            self._say(obj, logging.ERROR, f"{action.__name__.strip('_')} failed, will retry: {exc!r}")

    def _say(self, obj: dict, level: int, message: str) -> None:
        """Log once per object and message: the pass repeats every second."""
        meta = obj["metadata"]
        key = (meta["uid"], message)
        if key not in self._said:
            self._said.add(key)
            what = f"claim {meta['namespace']}/{meta['name']}" if meta.get("namespace") else f"volume {meta['name']}"
            log.log(level, "%s: %s", what, message)

    # Provisioning ----------------------------------------------------------------
    def _provision(self, claim: dict, storage_class: dict, pods: dict[str, list[dict]]) -> None:
        meta, spec = claim["metadata"], claim["spec"]
        if storage_class.get("volumeBindingMode") == WAIT_FOR_FIRST_CONSUMER and not self._consumed(claim, pods):
            return
        if spec.get("volumeMode", "Filesystem") != "Filesystem":
            self._say(claim, logging.WARNING, "the local-path provisioner provides only Filesystem volumes")
            return
        if "storage" not in ((spec.get("resources") or {}).get("requests") or {}):
            self._say(claim, logging.WARNING, "no storage request; not provisioning")
            return
        path = self.volumes_dir / f"{pv_name(claim)}_{meta['namespace']}_{meta['name']}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)  # as the real provisioner's helper pod makes it
        if self.api.create_pv(pv_body(claim, storage_class, self.node, path)):
            log.info("claim %s/%s: provisioned %s at %s", meta["namespace"], meta["name"], pv_name(claim), path)

    def _consumed(self, claim: dict, pods: dict[str, list[dict]]) -> bool:
        """A WaitForFirstConsumer claim is ready once its first consumer is on this node."""
        meta = claim["metadata"]
        if (meta.get("annotations") or {}).get(SELECTED_NODE) == self.node:
            return True
        namespace = meta["namespace"]
        if namespace not in pods:
            pods[namespace] = self.api.list_namespaced_pods(namespace)
        return any(pod["spec"].get("nodeName") == self.node and not pod["metadata"].get("deletionTimestamp")
                   and uses_claim(pod, meta["name"]) for pod in pods[namespace])

    # Deletion ----------------------------------------------------------------------
    @staticmethod
    def _releasable(pv: dict) -> bool:
        return ((pv["metadata"].get("annotations") or {}).get(PROVISIONED_BY) == PROVISIONER
                and pv["spec"].get("persistentVolumeReclaimPolicy") == "Delete"
                and (pv.get("status") or {}).get("phase") == "Released"
                and not pv["metadata"].get("deletionTimestamp"))

    def _delete(self, pv: dict) -> None:
        path = self._owned_directory(pv)
        if path is None:
            self._say(pv, logging.WARNING, f"its directory is not inside {self.volumes_dir}; leaving the volume")
            return
        if path.exists():
            shutil.rmtree(path)
        self.api.delete_pv(pv)
        log.info("persistentvolume %s: released; deleted it and %s", pv["metadata"]["name"], path)

    def _owned_directory(self, pv: dict) -> Path | None:
        """The PV's directory if it lies strictly inside the local volumes directory (symlinks resolved)."""
        source = pv["spec"].get("hostPath") or pv["spec"].get("local") or {}
        if not source.get("path"):
            return None
        root = self.volumes_dir.resolve()
        path = Path(source["path"]).resolve()
        if path == root or not path.is_relative_to(root):
            return None
        return path
