"""The emulator's link to the real Kubernetes API: pvCreate, pvcCreate, kubernetesStatus.

Like the manager, the emulator creates PVs and PVCs through the API server with
the official client, and keeps each volume's kubernetesStatus in step with the
PV whose CSI volumeHandle names it (bound PVC, workload pods). The manager
watches; the emulator lists PVs, PVCs and pods every `sync_seconds` (from the
API server's watch cache) and re-reads a volume's PV while pvcCreate waits.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path

from . import util
from .api import ApiError, Ctx, json_response
from .inputs import decode
from .volume_view import render_volume, volume_or_404

log = logging.getLogger(__name__)

DRIVERS = ("driver.longhorn.io", "io.rancher.longhorn")
DEFAULT_STATIC_CLASS = "longhorn-static"
MIN_XFS_SIZE = 300 * util.MIB
PVC_POLLS, PVC_POLL_SECONDS = 5, 1.0
TIMEOUT = 15


def _error(exc: Exception) -> str:
    """The API server's message, as the Go client's error would read."""
    body = getattr(exc, "body", None)
    if body:
        try:
            return json.loads(body)["message"]
        except (ValueError, KeyError, TypeError):
            pass
    return str(exc)


def next_status(old: dict, pv: dict | None, pods: list[dict], now: str) -> dict:
    """A volume's kubernetesStatus after looking at its PV and the pods using its claim."""
    status = dict(old)
    if pv is None:
        if status["pvName"]:  # the PV went away: what remains is history
            if status["pvcName"] and not status["lastPVCRefAt"]:
                status["lastPVCRefAt"] = now
            if status["workloadsStatus"] and not status["lastPodRefAt"]:
                status["lastPodRefAt"] = now
            status["pvName"] = status["pvStatus"] = ""
        return status
    name, phase = pv["metadata"]["name"], pv.get("status", {}).get("phase", "")
    if status["pvName"] != name:  # a new PV (re)uses the volume
        status = {key: "" for key in status} | {"workloadsStatus": None}
    previous_phase = status["pvStatus"]
    status["pvName"], status["pvStatus"] = name, phase
    claim = pv["spec"].get("claimRef")
    released = False
    if claim and phase == "Bound":
        status.update(pvcName=claim["name"], namespace=claim.get("namespace", ""), lastPVCRefAt="")
    elif claim:
        released = previous_phase == "Bound" and not status["lastPVCRefAt"]
    else:
        released = bool(status["pvcName"]) and not status["lastPVCRefAt"]
    if released:
        status["lastPVCRefAt"] = now
        if status["workloadsStatus"] and not status["lastPodRefAt"]:
            status["lastPodRefAt"] = now
    if phase != "Bound":
        pods = []
    if pods:
        status["workloadsStatus"] = [_workload(pod) for pod in sorted(pods, key=lambda p: p["metadata"]["name"])]
        status["lastPodRefAt"] = ""
    elif status["workloadsStatus"] and not status["lastPodRefAt"]:
        status["lastPodRefAt"] = now
    return status


def _workload(pod: dict) -> dict:
    owner = next((ref for ref in pod["metadata"].get("ownerReferences") or () if ref.get("name") and ref.get("kind")),
                 {})
    return {"podName": pod["metadata"]["name"], "podStatus": pod.get("status", {}).get("phase", ""),
            "workloadName": owner.get("name", ""), "workloadType": owner.get("kind", "")}


def _handle(pv: dict) -> str:
    """The Longhorn volume a PV stands for ("" if none, or if the PV is being deleted)."""
    csi = pv.get("spec", {}).get("csi") or {}
    if csi.get("driver") not in DRIVERS or pv["metadata"].get("deletionTimestamp"):
        return ""
    return csi.get("volumeHandle", "")


class KubeBridge:
    def __init__(self, emu, kubeconfig: Path, sync_seconds: float = 2.0):
        self.emu = emu
        self.kubeconfig = kubeconfig
        self.sync_seconds = sync_seconds
        self._api = None
        self._api_lock = threading.Lock()
        self._classes: dict[tuple[str, str], str] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def core(self):
        """A CoreV1Api built from the kubeconfig on first use."""
        with self._api_lock:
            if self._api is None:
                from kubernetes import client, config
                self._api = client.CoreV1Api(config.new_client_from_config(config_file=str(self.kubeconfig)))
            return self._api

    def _list(self, method, **kwargs) -> list[dict]:
        response = method(_preload_content=False, _request_timeout=TIMEOUT, **kwargs)
        return json.loads(response.data)["items"]

    # Status sync ---------------------------------------------------------------
    def start(self) -> None:
        if self.sync_seconds > 0:
            self._thread = threading.Thread(target=self._loop, name="longhorn-kube-sync", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=TIMEOUT)

    def _loop(self) -> None:
        while not self._stop.wait(self.sync_seconds):
            try:
                self.sync_all()
            except Exception as exc:  # the API server may be down for a while; keep trying
                log.warning("kubernetes status sync failed: %s", exc)

    def sync_all(self) -> None:
        core = self.core()
        pvs = {_handle(pv): pv for pv in self._list(core.list_persistent_volume, resource_version="0")}
        pvcs = self._list(core.list_persistent_volume_claim_for_all_namespaces, resource_version="0")
        pods = self._list(core.list_pod_for_all_namespaces, resource_version="0")
        self._classes = {(c["metadata"]["namespace"], c["metadata"]["name"]): c["spec"].get("storageClassName") or ""
                         for c in pvcs}
        users: dict[tuple[str, str], list[dict]] = {}
        for pod in pods:
            for volume in pod.get("spec", {}).get("volumes") or ():
                claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
                if claim:
                    users.setdefault((pod["metadata"]["namespace"], claim), []).append(pod)
        now = util.rfc3339(util.now())
        for volume in self.emu.store.values("volumes"):
            pv = pvs.get(volume["name"])
            status = volume["kubernetesStatus"]
            if pv is None and not status["pvName"]:
                continue
            claim = (pv or {}).get("spec", {}).get("claimRef") or {}
            self._apply(volume["name"], next_status(status, pv, users.get((claim.get("namespace"), claim.get("name")), []), now))

    def sync_volume(self, name: str) -> None:
        """Re-read the PV of one volume now (what the manager's PV watch does)."""
        pvs = [pv for pv in self._list(self.core().list_persistent_volume) if _handle(pv) == name]
        volume = self.emu.store.get("volumes", name)
        if volume is not None:
            self._apply(name, next_status(volume["kubernetesStatus"], pvs[0] if pvs else None, [],
                                          util.rfc3339(util.now())))

    def _apply(self, name: str, status: dict) -> None:
        with self.emu.store.lock:
            volume = self.emu.store.get("volumes", name)
            if volume is not None and volume["kubernetesStatus"] != status:
                self.emu.store.update("volumes", name, kubernetesStatus=status)

    def grow_claim(self, namespace: str, pvc: str, size: int) -> None:
        """Raise a bound PVC's storage request to `size` bytes if it asks for less (best effort)."""
        try:
            core = self.core()
            claim = core.read_namespaced_persistent_volume_claim(pvc, namespace, _request_timeout=TIMEOUT)
            current = util.parse_quantity((claim.spec.resources.requests or {}).get("storage", "0"))
            if current < size:
                core.patch_namespaced_persistent_volume_claim(
                    pvc, namespace, {"spec": {"resources": {"requests": {"storage": str(size)}}}},
                    _request_timeout=TIMEOUT)
        except Exception as exc:
            log.warning("cannot grow PVC %s/%s: %s", namespace, pvc, _error(exc))

    def storage_class_of(self, namespace: str, pvc: str) -> str:
        if (namespace, pvc) not in self._classes:
            try:
                claim = self.core().read_namespaced_persistent_volume_claim(pvc, namespace, _request_timeout=TIMEOUT)
                self._classes[(namespace, pvc)] = claim.spec.storage_class_name or ""
            except Exception as exc:
                log.warning("cannot read PVC %s/%s: %s", namespace, pvc, _error(exc))
                return ""
        return self._classes[(namespace, pvc)]


# Actions ------------------------------------------------------------------------------
def _bridge(emu, prefix: str) -> KubeBridge:
    if emu.kube is None:
        raise ApiError(f"{prefix}: the sandbox Longhorn emulator was started without --kubeconfig")
    return emu.kube


def pv_create(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "PVCreateInput")
    except ApiError as exc:
        raise exc.wrap("failed to read pvCreateInput") from None
    volume = volume_or_404(emu, name)
    prefix = f"unable to create PV for volume {name}"
    if volume["kubernetesStatus"]["pvName"]:
        raise ApiError(f"{prefix}: volume already had PV {volume['kubernetesStatus']['pvName']}")
    pv_name = body["pvName"] or name
    storage_class = body["storageClassName"]
    if not storage_class and volume["restoredFromBV"]:
        storage_class = (emu.store.get("backup_volumes", volume["restoredFromBV"]) or {}).get("storageClassName", "")
    storage_class = storage_class or DEFAULT_STATIC_CLASS
    fs_type = body["fsType"] or "ext4"
    if fs_type == "xfs" and volume["size"] < MIN_XFS_SIZE:
        raise ApiError(f"{prefix}: XFS filesystems with size {volume['size']}, smaller than {MIN_XFS_SIZE}, "
                       "are not supported")
    attributes = {"diskSelector": ",".join(volume["diskSelector"] or ()),
                  "nodeSelector": ",".join(volume["nodeSelector"] or ()),
                  "numberOfReplicas": str(volume["numberOfReplicas"]),
                  "staleReplicaTimeout": str(volume["staleReplicaTimeout"])}
    csi = {"driver": DRIVERS[0], "fsType": fs_type, "volumeHandle": name, "volumeAttributes": attributes}
    if volume["encrypted"]:
        attributes["encrypted"] = "true"
        secret = {"name": body["secretName"] or "longhorn-crypto",
                  "namespace": body["secretNamespace"] or "longhorn-system"}
        csi.update(nodeStageSecretRef=secret, nodePublishSecretRef=secret)
    access_mode = "ReadWriteMany" if volume["accessMode"] == "rwx" else "ReadWriteOnce"
    if access_mode == "ReadWriteMany":
        attributes["migratable"] = str(volume["migratable"]).lower()
    manifest = {
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": pv_name},
        "spec": {"capacity": {"storage": util.binary_quantity(volume["size"])}, "accessModes": [access_mode],
                 "persistentVolumeReclaimPolicy": "Retain", "volumeMode": "Filesystem",
                 "storageClassName": storage_class, "csi": csi},
    }
    try:
        _bridge(emu, prefix).core().create_persistent_volume(manifest, _request_timeout=TIMEOUT)
    except ApiError:
        raise
    except Exception as exc:
        raise ApiError(f"{prefix}: {_error(exc)}") from None
    return json_response(ctx, render_volume(emu, ctx, emu.store.get("volumes", name) or volume, util.now()))


def pvc_create(emu, ctx: Ctx, request, name: str):
    try:
        body = decode(request.get_data(), "PVCCreateInput")
    except ApiError as exc:
        raise exc.wrap("failed to read pvcCreateInput") from None
    volume = volume_or_404(emu, name)
    prefix = f"unable to create PVC for volume {name}"
    status = volume["kubernetesStatus"]
    if status["pvcName"] and not status["lastPVCRefAt"]:
        raise ApiError(f"{prefix}: volume already had PVC {status['pvcName']}")
    bridge = _bridge(emu, prefix)
    try:
        for attempt in range(PVC_POLLS):
            bridge.sync_volume(name)
            status = volume_or_404(emu, name)["kubernetesStatus"]
            if status["pvName"] and status["pvStatus"] in ("Available", "Released"):
                break
            if attempt + 1 < PVC_POLLS:
                time.sleep(PVC_POLL_SECONDS)
        else:
            raise ApiError(f"{prefix}: cannot found PV {status['pvName']} or the PV status "
                           f"{status['pvStatus']} is invalid for PVC creation")
        core = bridge.core()
        pv = core.read_persistent_volume(status["pvName"], _request_timeout=TIMEOUT)
        if pv.spec.claim_ref is not None:  # a released PV keeps its old claim; clear it for reuse
            core.patch_persistent_volume(status["pvName"], {"spec": {"claimRef": None}}, _request_timeout=TIMEOUT)
        manifest = {
            "apiVersion": "v1", "kind": "PersistentVolumeClaim",
            "metadata": {"name": body["pvcName"] or name, "namespace": body["namespace"]},
            "spec": {"accessModes": ["ReadWriteMany" if volume["accessMode"] == "rwx" else "ReadWriteOnce"],
                     "resources": {"requests": {"storage": util.binary_quantity(volume["size"])}},
                     "storageClassName": pv.spec.storage_class_name or "", "volumeName": status["pvName"]},
        }
        core.create_namespaced_persistent_volume_claim(body["namespace"], manifest, _request_timeout=TIMEOUT)
    except ApiError:
        raise
    except Exception as exc:
        raise ApiError(f"{prefix}: {_error(exc)}") from None
    return json_response(ctx, render_volume(emu, ctx, volume_or_404(emu, name), util.now()))
