"""Seed data: the demo world, and a scale generator for benchmarks.

Kubernetes objects go through the real apiserver (PVs already bound to their
claims, as a provisioner would leave them; the real PV controller marks both
Bound); Longhorn volumes, their files and their historical backups go through
the emulator's bulk /sandbox/seed call, and the emulator writes them as
Longhorn CRs (volumes, backups, backupvolumes in longhorn-system) with a pool
of connections; `scale` waits for those too and reports the time.
"""

from __future__ import annotations

import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from . import faults, s3
from .config import SandboxConfig

LONGHORN = "driver.longhorn.io"
RESTIC_PASSWORD = "sandbox-restic-password"
SERVICE_NAMESPACE = "soteria"


@dataclass(frozen=True)
class DemoPvc:
    namespace: str
    name: str
    size: str
    storage_class: str = "longhorn"
    # Completed backups, hours ago; failed ones (Soteria's snapshot names), hours ago.
    completed: tuple[float, ...] = ()
    failed: tuple[float, ...] = ()
    bound: bool = True
    # Longhorn volume attached (a workload uses it) or detached (a snapshot waits for the attachment).
    attached: bool = True


DEMO = (
    DemoPvc("ai", "llm-cache", "50Gi", completed=tuple(0.6 + 6 * i for i in range(14))),
    DemoPvc("ai", "model-store", "20Gi", completed=(30, 54, 78)),
    DemoPvc("ai", "notebooks", "5Gi", attached=False),
    DemoPvc("media", "photos", "100Gi", completed=(2, 26, 50)),
    DemoPvc("media", "transcode-cache", "10Gi", storage_class="local-path"),
    DemoPvc("databases", "postgres-data", "8Gi", completed=(28, 52), failed=(1,)),
    DemoPvc("databases", "redis-data", "2Gi", completed=(3, 27)),
    DemoPvc("databases", "analytics-warehouse", "30Gi", bound=False),
)


def _api(cfg: SandboxConfig):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    api.configuration.connection_pool_maxsize = 32
    return client.CoreV1Api(api), client.StorageV1Api(api)


def _ignore_exists(fn, *args, **kwargs) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        fn(*args, **kwargs)
    except ApiException as exc:
        if exc.status != 409:
            raise


def volume_name(namespace: str, pvc: str) -> str:
    """A stable Longhorn volume (and PV) name, shaped like a dynamically provisioned one."""
    return f"pvc-{uuid.uuid5(uuid.NAMESPACE_URL, f'soteria-sandbox/{namespace}/{pvc}')}"


def _quantity_bytes(size: str) -> int:
    units = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40}
    return int(size[:-2]) * units[size[-2:]] if size[-2:] in units else int(size)


def ensure_basics(cfg: SandboxConfig, namespaces) -> None:
    core, storage = _api(cfg)
    for name in namespaces:
        _ignore_exists(core.create_namespace, {"metadata": {"name": name}})
    _ignore_exists(storage.create_storage_class, {
        "metadata": {"name": "longhorn"}, "provisioner": LONGHORN, "reclaimPolicy": "Delete",
        "allowVolumeExpansion": True, "volumeBindingMode": "Immediate",
        "parameters": {"numberOfReplicas": "3", "staleReplicaTimeout": "30", "fsType": "ext4"}})
    _ignore_exists(storage.create_storage_class, {
        "metadata": {"name": "local-path"}, "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
        "volumeBindingMode": "Immediate"})


def pv_and_pvc(cfg: SandboxConfig, namespace: str, pvc: str, size: str, storage_class: str) -> tuple[dict, dict]:
    name = volume_name(namespace, pvc)
    if storage_class == "longhorn":
        source = {"csi": {"driver": LONGHORN, "volumeHandle": name, "fsType": "ext4",
                          "volumeAttributes": {"numberOfReplicas": "3", "staleReplicaTimeout": "30"}}}
        annotations = {"pv.kubernetes.io/provisioned-by": LONGHORN}
    else:
        path = cfg.local_volumes_dir / f"{namespace}-{pvc}"
        path.mkdir(parents=True, exist_ok=True)
        source = {"hostPath": {"path": str(path), "type": "DirectoryOrCreate"}}
        annotations = {"pv.kubernetes.io/provisioned-by": "rancher.io/local-path"}
    pv = {"metadata": {"name": name, "annotations": annotations},
          "spec": {"capacity": {"storage": size}, "accessModes": ["ReadWriteOnce"],
                   "persistentVolumeReclaimPolicy": "Retain", "storageClassName": storage_class,
                   "volumeMode": "Filesystem", "claimRef": {"namespace": namespace, "name": pvc}, **source}}
    claim = {"metadata": {"name": pvc, "namespace": namespace},
             "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": storage_class,
                      "resources": {"requests": {"storage": size}}, "volumeName": name}}
    return pv, claim


def _files(namespace: str, pvc: str) -> dict[str, str]:
    seed = f"{namespace}/{pvc}"
    return {"README.txt": f"Sandbox volume of PVC {seed}.\n",
            "data/records.csv": "id,value\n" + "".join(f"{i},{(i * 7919 + len(seed) * 104729) % 65536}\n" for i in range(200)),
            "data/config.json": f'{{"pvc": "{pvc}", "namespace": "{namespace}"}}\n'}


def _at(now: datetime, hours_ago: float) -> str:
    return (now - timedelta(hours=hours_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _snapshot(namespace: str, pvc: str, now: datetime, hours_ago: float) -> str:
    return f"soteria-backup-{namespace}-{pvc}-{now - timedelta(hours=hours_ago):%Y%m%d-%H%M%S}"


def demo(cfg: SandboxConfig) -> dict:
    """The demo world: namespaces, classes, PVCs with files and backups of varied ages, the restic Secret."""
    now = datetime.now(timezone.utc)
    ensure_basics(cfg, [SERVICE_NAMESPACE, "ai", "media", "databases"])
    core, _ = _api(cfg)
    volumes = []
    for item in DEMO:
        pv, claim = pv_and_pvc(cfg, item.namespace, item.name, item.size, item.storage_class)
        if item.bound:
            _ignore_exists(core.create_persistent_volume, pv)
        else:
            claim["spec"].pop("volumeName")
        _ignore_exists(core.create_namespaced_persistent_volume_claim, item.namespace, claim)
        if item.storage_class == "local-path":
            path = pv["spec"]["hostPath"]["path"]
            for rel, text in _files(item.namespace, item.name).items():
                target = cfg.local_volumes_dir / path.rsplit("/", 1)[-1] / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
        if item.storage_class != "longhorn" or not item.bound:
            continue
        name = pv["metadata"]["name"]
        backups = [{"state": "Completed", "created": _at(now, h), "snapshotName": _snapshot(item.namespace, item.name,
                    now, h), "labels": {"seeded": "true"}, "size": str(3 * 2 ** 20)} for h in item.completed]
        backups += [{"state": "Error", "created": _at(now, h), "snapshotName": _snapshot(item.namespace, item.name,
                     now, h), "error": "failed to upload backup block: connection reset by peer"} for h in item.failed]
        volumes.append({"name": name, "size": item.size, "files": _files(item.namespace, item.name),
                        "created": _at(now, 24 * 90), "state": "attached" if item.attached else "detached",
                        "kubernetesStatus": {"pvName": name, "pvStatus": "Bound", "namespace": item.namespace,
                                             "pvcName": item.name},
                        "backups": backups})
    faults.longhorn_seed(cfg, {"volumes": volumes})
    env = s3.restic_env(cfg)
    _ignore_exists(core.create_namespaced_secret, SERVICE_NAMESPACE, {
        "metadata": {"name": "soteria-restic", "namespace": SERVICE_NAMESPACE},
        "stringData": {"AWS_ACCESS_KEY_ID": env["AWS_ACCESS_KEY_ID"],
                       "AWS_SECRET_ACCESS_KEY": env["AWS_SECRET_ACCESS_KEY"], "RESTIC_PASSWORD": RESTIC_PASSWORD}})
    wait_bound(cfg, [(d.namespace, d.name) for d in DEMO if d.bound])
    faults.wait_mirrored(cfg, timeout=120)  # the Longhorn CRs too
    restic_snapshots = [restic_snapshot(cfg, d.namespace, d.name) for d in DEMO
                        if d.storage_class != "longhorn" and d.bound]
    return {"pvcs": len(DEMO), "longhorn_volumes": len(volumes), "restic_snapshots": sum(restic_snapshots)}


def restic_snapshot(cfg: SandboxConfig, namespace: str, pvc: str) -> bool:
    """One restic snapshot of a non-Longhorn demo PVC in the sandbox's repository, taken as the
    restic driver's Jobs take them (from inside the volume, host `soteria`, the PVC's tags), so
    SOTERIA_BACKUP_DRIVER=auto (or restic) shows it backed up. False when restic is missing."""
    import shutil
    import subprocess

    if not shutil.which("restic"):
        print("sandbox: restic is not installed; the demo's restic PVC stays never backed up", flush=True)
        return False
    env = {**s3.restic_env(cfg), "RESTIC_PASSWORD": RESTIC_PASSWORD, "PATH": "/usr/bin:/bin:/usr/local/bin",
           "HOME": str(cfg.state_dir), "RESTIC_CACHE_DIR": str(cfg.state_dir / "restic-cache")}
    probe = subprocess.run(["restic", "cat", "config", "--no-lock"], env=env, capture_output=True, timeout=120)
    if probe.returncode != 0:
        subprocess.run(["restic", "init"], env=env, capture_output=True, timeout=120, check=True)
    tags = [f"soteria.io/namespace={namespace}", f"soteria.io/pvc={pvc}", "seeded=true"]
    subprocess.run(["restic", "backup", ".", "--host", "soteria", *[a for t in tags for a in ("--tag", t)]],
                   cwd=cfg.local_volumes_dir / f"{namespace}-{pvc}", env=env, capture_output=True, timeout=300,
                   check=True)
    return True


def wait_bound(cfg: SandboxConfig, claims, timeout: float = 120) -> None:
    """Until the real PV controller has bound every listed claim."""
    core, _ = _api(cfg)
    wanted = set(claims)
    deadline = time.monotonic() + timeout
    while True:
        bound = {(p.metadata.namespace, p.metadata.name)
                 for p in core.list_persistent_volume_claim_for_all_namespaces().items if p.status.phase == "Bound"}
        if wanted <= bound:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"claims not bound after {timeout:.0f}s: {sorted(wanted - bound)[:5]}")
        time.sleep(0.5)


def scale(cfg: SandboxConfig, namespaces: int, pvcs: int, backups: int, prefix: str = "scale",
          wait: bool = False, on_bound=None) -> dict:
    """N namespaces x M PVCs (Longhorn) x K Completed backups, one hour apart. With `wait`, the
    claims are bound before Longhorn's CRs are written, and `on_bound()` is then called."""
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    names = [f"{prefix}-{n:03d}" for n in range(namespaces)]
    ensure_basics(cfg, names)
    core, _ = _api(cfg)
    pairs = [(ns, f"data-{m:04d}") for ns in names for m in range(pvcs)]

    def create(pair):
        pv, claim = pv_and_pvc(cfg, pair[0], pair[1], "1Gi", "longhorn")
        _ignore_exists(core.create_persistent_volume, pv)
        _ignore_exists(core.create_namespaced_persistent_volume_claim, pair[0], claim)

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(create, pairs))
    if wait:
        wait_bound(cfg, pairs, timeout=600)
        if on_bound is not None:
            on_bound()
    kube_seconds = time.monotonic() - started
    chunk = max(1, 200_000 // max(backups, 1))
    for i in range(0, len(pairs), chunk):
        faults.longhorn_seed(cfg, {"volumes": [{
            "name": volume_name(ns, pvc), "size": "1Gi", "created": _at(now, 24 * 365),
            "kubernetesStatus": {"pvName": volume_name(ns, pvc), "pvStatus": "Bound", "namespace": ns, "pvcName": pvc},
            "backups": [{"state": "Completed", "created": _at(now, 1 + k), "size": "1048576",
                         "snapshotName": _snapshot(ns, pvc, now, 1 + k)} for k in range(backups)],
        } for ns, pvc in pairs[i:i + chunk]]})
    longhorn_done = time.monotonic()
    mirrored = faults.wait_mirrored(cfg, timeout=max(600.0, len(pairs) * (backups + 2) / 100))
    crs_seconds = time.monotonic() - longhorn_done
    return {"namespaces": namespaces, "pvcs": len(pairs), "backups": len(pairs) * backups,
            "kubernetes_seconds": round(kube_seconds, 1), "longhorn_seconds": round(longhorn_done - started - kube_seconds, 1),
            "longhorn_crs_seconds": round(crs_seconds, 1), "longhorn_crs": mirrored.get("objects"),
            "seconds": round(time.monotonic() - started, 1)}


def make_pvc(cfg: SandboxConfig, namespace: str, name: str, *, size: str = "1Gi", files: dict | None = None,
             backups: list | None = None, bound: bool = True, wait: bool = True) -> str:
    """One Longhorn-backed PVC (namespace created if needed) with files and seeded backups
    (the emulator's /sandbox/seed format). Returns the Longhorn volume name."""
    ensure_basics(cfg, [namespace])
    core, _ = _api(cfg)
    pv, claim = pv_and_pvc(cfg, namespace, name, size, "longhorn")
    volume = pv["metadata"]["name"]
    faults.longhorn_seed(cfg, {"volumes": [{
        "name": volume, "size": size, "files": files or {}, "state": "attached",
        "kubernetesStatus": {"pvName": volume, "pvStatus": "Bound", "namespace": namespace, "pvcName": name},
        "backups": backups or []}]})
    if bound:
        _ignore_exists(core.create_persistent_volume, pv)
    else:
        claim["spec"].pop("volumeName")
    _ignore_exists(core.create_namespaced_persistent_volume_claim, namespace, claim)
    if wait and bound:
        wait_bound(cfg, [(namespace, name)])
    return volume
