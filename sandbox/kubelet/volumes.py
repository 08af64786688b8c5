"""A pod's volumes as local directories, and each container's mounts of them.

- persistentVolumeClaim -> the bound PV -> a directory: a Longhorn CSI volume
  (`driver.longhorn.io`) is <longhorn-volumes>/<volumeHandle>/, a hostPath or
  local PV is its path. An unbound or missing claim keeps the pod waiting.
- hostPath: its path. emptyDir: a fresh directory of the pod.
- secret / configMap: their keys written as files into a directory of the pod.
Anything else fails the pod with reason UnsupportedVolume.
"""

from __future__ import annotations

import base64
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path

from .api import Api
from .spec import PodNotReady, PodUnrunnable, expand

LONGHORN_DRIVER = "driver.longhorn.io"


@dataclass(frozen=True)
class Volume:
    path: Path
    read_only: bool = False


@dataclass(frozen=True)
class Mount:
    source: Path
    target: str
    read_only: bool


def pod_volumes(api: Api, pod: dict, pod_dir: Path, longhorn_dir: Path) -> dict[str, Volume]:
    """Volume name -> local directory, or PodNotReady / PodUnrunnable."""
    namespace = pod["metadata"]["namespace"]
    result = {}
    for vol in pod["spec"].get("volumes") or []:
        name = vol["name"]
        if "persistentVolumeClaim" in vol:
            source = vol["persistentVolumeClaim"]
            path = claim_directory(api, namespace, source["claimName"], longhorn_dir)
            result[name] = Volume(path, bool(source.get("readOnly")))
        elif "hostPath" in vol:
            result[name] = Volume(_host_path(vol["hostPath"]))
        elif "emptyDir" in vol:
            path = pod_dir / "volumes" / name
            path.mkdir(parents=True, exist_ok=True)
            result[name] = Volume(path)
        elif "secret" in vol or "configMap" in vol:
            result[name] = Volume(_materialise(api, namespace, vol, pod_dir / "volumes" / name), True)
        else:
            kinds = sorted(set(vol) - {"name"})
            raise PodUnrunnable("UnsupportedVolume", f"volume {name!r}: the sandbox kubelet cannot mount {kinds}")
    return result


def claim_directory(api: Api, namespace: str, claim: str, longhorn_dir: Path) -> Path:
    """The local directory behind a PVC (created for a Longhorn volume if missing)."""
    pvc = api.pvc(namespace, claim)
    if pvc is None:
        raise PodNotReady("ContainerCreating", f'persistentvolumeclaim "{claim}" not found')
    volume_name = pvc["spec"].get("volumeName")
    if not volume_name or (pvc.get("status") or {}).get("phase") != "Bound":
        raise PodNotReady("ContainerCreating", f'persistentvolumeclaim "{claim}" is not bound')
    pv = api.pv(volume_name)
    if pv is None:
        raise PodNotReady("ContainerCreating", f'persistentvolume "{volume_name}" not found')
    spec = pv["spec"]
    if (spec.get("csi") or {}).get("driver") == LONGHORN_DRIVER:
        path = longhorn_dir / spec["csi"]["volumeHandle"]
        path.mkdir(parents=True, exist_ok=True)
        return path
    if "hostPath" in spec:
        return _host_path(spec["hostPath"])
    if "local" in spec:
        path = Path(spec["local"]["path"])
        if not path.is_dir():
            raise PodNotReady("ContainerCreating", f'local volume path "{path}" of PV {volume_name} does not exist')
        return path
    raise PodUnrunnable("UnsupportedVolume",
                        f"persistentvolume {volume_name!r} is neither a Longhorn CSI, hostPath nor local volume")


def _host_path(source: dict) -> Path:
    """A hostPath's directory; like a container runtime, create it if missing (files are not made)."""
    path = Path(source["path"])
    kind = source.get("type", "")
    if kind in ("", "DirectoryOrCreate") and not path.exists():
        path.mkdir(parents=True, exist_ok=True)
    elif kind == "Directory" and not path.is_dir():
        raise PodNotReady("ContainerCreating", f'hostPath type check failed: {path} is not a directory')
    return path


def _materialise(api: Api, namespace: str, vol: dict, target: Path) -> Path:
    """Write a Secret's or ConfigMap's keys (or the selected `items`) as files."""
    if "secret" in vol:
        source, ref = vol["secret"], vol["secret"].get("secretName", "")
        obj, kind = api.secret(namespace, ref), "secret"
        files = {k: base64.b64decode(v) for k, v in ((obj or {}).get("data") or {}).items()}
    else:
        source, ref = vol["configMap"], vol["configMap"].get("name", "")
        obj, kind = api.config_map(namespace, ref), "configmap"
        files = {k: v.encode() for k, v in ((obj or {}).get("data") or {}).items()}
        files.update({k: base64.b64decode(v) for k, v in ((obj or {}).get("binaryData") or {}).items()})
    if obj is None and not source.get("optional"):
        raise PodNotReady("ContainerCreating", f'MountVolume.SetUp failed for volume "{vol["name"]}": '
                                               f'{kind} "{ref}" not found')
    items = source.get("items") or [{"key": key, "path": key} for key in files]
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    for item in items:
        if item["key"] not in files:
            if source.get("optional"):
                continue
            raise PodNotReady("ContainerCreating", f"{kind} {ref}: key {item['key']!r} not found")
        path = target / _relative(item["path"])
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[item["key"]])
        path.chmod(item.get("mode", source.get("defaultMode", 0o644)))
    return target


def _relative(path: str) -> str:
    """A path that must stay inside its volume (no absolute paths, no `..`)."""
    norm = posixpath.normpath(path)
    if path.startswith("/") or norm == ".." or norm.startswith("../"):
        raise PodUnrunnable("InvalidPath", f"path {path!r} must be relative and stay inside its volume")
    return norm


def container_mounts(container: dict, volumes: dict[str, Volume], env: dict[str, str]) -> list[Mount]:
    """The container's volumeMounts as host directories, parents before children.

    subPathExpr is expanded with the container's environment, as the kubelet does.
    """
    mounts = []
    for mount in container.get("volumeMounts") or []:
        volume = volumes.get(mount["name"])
        if volume is None:
            raise PodUnrunnable("InvalidMount", f"volumeMount {mount['name']!r} names no volume of the pod")
        source = volume.path
        sub_path = expand(mount["subPathExpr"], env) if mount.get("subPathExpr") else mount.get("subPath")
        if sub_path:
            source = source / _relative(sub_path)
            if not source.exists():
                os.makedirs(source, exist_ok=True)  # the kubelet creates a missing subPath directory
        read_only = volume.read_only or bool(mount.get("readOnly"))
        mounts.append(Mount(source, posixpath.normpath(mount["mountPath"]), read_only))
    return sorted(mounts, key=lambda m: m.target.count("/"))
