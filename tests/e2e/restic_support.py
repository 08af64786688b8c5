"""Helpers for the restic driver's end-to-end tests: non-Longhorn PVCs with real files, a
stand-in provisioner for restored claims, and a tree comparison that sees symlinks."""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path

from sandbox import seed
from sandbox.config import SandboxConfig

from .conftest import kube, wait_for

CLASS = "local-path"


def host_dir(cfg: SandboxConfig, namespace: str, pvc: str) -> Path:
    return cfg.local_volumes_dir / f"{namespace}-{pvc}"


def write_tree(root: Path, marker: str) -> None:
    """Files that are easy to get wrong: empty, a symlink, nested, spaces and non-ASCII in names."""
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True, exist_ok=True)
    (root / "README.txt").write_text(f"restic round trip of {marker}\n")
    (root / "empty").write_bytes(b"")
    (root / "nested" / "deeper" / "deepest" / "rows.csv").write_text(
        "id,v\n" + "".join(f"{i},{i * i}\n" for i in range(2000)))
    (root / "with spaces and ünïcødé — 数据.txt").write_text(f"{marker}: ✓\n")
    (root / "blob.bin").write_bytes(os.urandom(256 * 1024))
    link = root / "link-to-readme"
    if not link.is_symlink():
        link.symlink_to("README.txt")


def local_pvc(cfg: SandboxConfig, namespace: str, pvc: str, marker: str | None = None, size: str = "1Gi") -> Path:
    """A bound PVC of class local-path (a hostPath PV: not Longhorn) holding `write_tree`'s files."""
    seed.ensure_basics(cfg, [namespace])
    pv, claim = seed.pv_and_pvc(cfg, namespace, pvc, size, CLASS)
    core = kube(cfg)
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    root = Path(pv["spec"]["hostPath"]["path"])
    write_tree(root, marker or f"{namespace}/{pvc}")
    seed.wait_bound(cfg, [(namespace, pvc)])
    return root


def provision(cfg: SandboxConfig, namespace: str, pvc: str) -> Path:
    """Play the storage class's provisioner for a claim Soteria creates: once the claim exists, a
    hostPath PV bound to it (the sandbox has no dynamic provisioner). Returns the PV's directory."""
    core = kube(cfg)
    claim = wait_for(lambda: _find_claim(core, namespace, pvc), what=f"claim {namespace}/{pvc} to be created")
    root = cfg.local_volumes_dir / f"provisioned-{uuid.uuid4().hex[:8]}"
    root.mkdir(parents=True)
    core.create_persistent_volume({
        "apiVersion": "v1", "kind": "PersistentVolume", "metadata": {"name": f"pv-{root.name}"},
        "spec": {"capacity": {"storage": claim.spec.resources.requests["storage"]},
                 "accessModes": claim.spec.access_modes, "persistentVolumeReclaimPolicy": "Retain",
                 "storageClassName": claim.spec.storage_class_name, "volumeMode": "Filesystem",
                 "claimRef": {"namespace": namespace, "name": pvc, "uid": claim.metadata.uid},
                 "hostPath": {"path": str(root), "type": "DirectoryOrCreate"}}})
    return root


def _find_claim(core, namespace: str, pvc: str):
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_persistent_volume_claim(pvc, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def tree(root: Path) -> dict[str, tuple]:
    """Relative path -> what it is: a file's bytes, a symlink's target, or a directory."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", path.read_bytes())
    return found
