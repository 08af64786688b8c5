"""An in-process stand-in for Kubernetes and Longhorn at the client seam.

Replaces the client modules' functions with methods over plain dicts and
counts every call by name, so unit tests can check behaviour and call costs.
The `cluster` fixture (tests/conftest.py) installs one for a test.
"""

from __future__ import annotations

import base64
import threading
from collections import Counter
from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from backups.clients import longhorn, longhorn_crd
from backups.clients.longhorn import Backup, BackupStatus, BackupVolume, Snapshot, Volume
from backups.drivers.longhorn_restore import quantity_bytes
from soteria_site.core import kubernetes, workloads
from soteria_site.core.errors import Conflict, NotFound, UpstreamError
from soteria_site.core.kubernetes import LONGHORN_CSI_DRIVER, ConfigMap, Lease, Pv, Pvc, Secret, StorageClass
from soteria_site.core.timeparse import parse_time
from soteria_site.core.workloads import RUNNING, Job, Pod

NOW = datetime(2026, 4, 12, 15, 30, tzinfo=timezone.utc)

MUTATING = {"create_snapshot", "backup_snapshot", "create_event", "create_secret", "replace_secret",
            "create_volume", "delete_volume", "create_pv", "delete_pv", "create_pvc", "delete_pvc", "delete_backup",
            "create_lease", "replace_lease", "delete_snapshot", "expand_volume", "create_config_map",
            "replace_config_map", "delete_config_map", "delete_lease", "create_job", "delete_job"}


# The calls of one inventory build: a test that finds none of them counted built nothing.
INVENTORY_LISTS = ("list_pvcs", "list_pvs", "list_storage_classes", "list_volumes", "list_backup_volumes",
                   "list_backups")


class FakeCluster:
    def __init__(self) -> None:
        self.pvcs: dict[tuple[str, str], Pvc] = {}
        self.pvs: dict[str, Pv] = {}
        self.classes = {"longhorn": StorageClass("longhorn", LONGHORN_CSI_DRIVER),
                        "local-path": StorageClass("local-path", "rancher.io/local-path")}
        self.namespaces: set[str] = set()
        self.volumes: dict[str, Volume] = {}
        self.backup_volumes: dict[str, BackupVolume] = {}
        self.backups: dict[str, list[Backup]] = {}
        self.snapshots: dict[tuple[str, str], Snapshot] = {}
        self.events: list[dict] = []
        self.calls: Counter = Counter()
        self.fail: dict[str, Exception] = {}
        self.secrets: dict[tuple[str, str], Secret] = {}
        self.leases: dict[tuple[str, str], Lease] = {}
        self.config_maps: dict[tuple[str, str], ConfigMap] = {}
        # Jobs and their pods: a test plays the Job controller and the kubelet (`run_job`).
        self.jobs: dict[tuple[str, str], Job] = {}
        self.job_bodies: dict[tuple[str, str], dict] = {}
        self.pods: list[Pod] = []
        self.logs: dict[tuple[str, str, str], str] = {}  # (namespace, pod, container) -> log
        self.deleted_jobs: list[tuple[str, str]] = []
        # Longhorn settings (GET /v1/settings/{name}); a missing name is a setting this version lacks.
        self.settings: dict[str, str] = {"current-longhorn-version": "v1.7.2"}
        # Per snapshot name: the states snapshotCRGet answers in turn (the last one repeats);
        # without an entry a snapshot is ready at once.
        self.snapshot_script: dict[str, list[Snapshot]] = {}
        self.deleted_snapshots: list[tuple[str, str]] = []
        # Longhorn's webhook gives a volume restored fromBackup the backup's volumeSize.
        self.expanded: list[tuple[str, str]] = []
        self._version = 0
        self._lock = threading.Lock()

    # --- building the world -----------------------------------------------------------
    def add_pvc(self, namespace: str, name: str, *, size="10Gi", storage_class="longhorn", bound=True,
                longhorn_volume: str | None = None, csi_driver=LONGHORN_CSI_DRIVER, backups=()) -> str:
        """A PVC (bound to a PV and a Longhorn volume unless told otherwise). `backups` is a list
        of (state, hours_ago or None, snapshot_name or None)."""
        self.namespaces.add(namespace)
        volume = longhorn_volume or f"pvc-{namespace}-{name}"
        self.pvcs[(namespace, name)] = Pvc(
            namespace=namespace, name=name, uid=f"uid-{namespace}-{name}", phase="Bound" if bound else "Pending",
            storage_class=storage_class, volume_name=volume if bound else None, access_modes=("ReadWriteOnce",),
            requested=size, capacity=size if bound else None)
        if not bound:
            return volume
        self.pvs[volume] = Pv(name=volume, phase="Bound", storage_class=storage_class, capacity=size,
                              access_modes=("ReadWriteOnce",), csi_driver=csi_driver,
                              volume_handle=volume if csi_driver else None, fs_type="ext4",
                              claim_namespace=namespace, claim_name=name, reclaim_policy="Retain")
        if csi_driver == LONGHORN_CSI_DRIVER:
            self.add_volume(volume, backups, size=str(quantity_bytes(size) or 10737418240))
        return volume

    def add_volume(self, volume: str, backups=(), size: str = "10737418240") -> None:
        """A Longhorn volume of `size` bytes. Each backup entry is (state, hours_ago, snapshot
        [, labels [, volumeSize]]); volumeSize defaults to the volume's size."""
        statuses, records, last = [], [], None
        for index, entry in enumerate(backups):
            state, hours_ago, snapshot = entry[:3]
            labels = entry[3] if len(entry) > 3 else {"k": "v"}
            volume_size = entry[4] if len(entry) > 4 else size
            name = f"backup-{volume}-{index}"
            when = NOW - timedelta(hours=hours_ago) if hours_ago is not None else None
            snapshot = snapshot or f"snap-{index}"
            statuses.append(BackupStatus(name=name, snapshot=snapshot, state=state, progress=100,
                                         url=f"s3://b@r/?backup={name}&volume={volume}", error="boom" if
                                         state == "Error" else "", size="1024"))
            records.append(Backup(name=name, volume_name=volume, snapshot_name=snapshot, state=state,
                                  progress=100, url=f"s3://b@r/?backup={name}&volume={volume}", error="",
                                  size="1024", created=when, snapshot_created=when, labels=labels,
                                  backup_mode="incremental", volume_size=volume_size))
            if state == "Completed" and when and (last is None or when > last):
                last = when
        self.volumes[volume] = Volume(
            name=volume, size=size, state="attached", robustness="healthy", ready=True, created=NOW,
            pv_name=volume, pvc_name="", pvc_namespace="", last_backup="", last_backup_at=last,
            backups=tuple(statuses), restore_required=False, restore_initiated=False)
        if records:
            self.backup_volumes[volume] = BackupVolume(name=volume, volume_name=volume, size="1", last_backup_name="",
                                                       last_backup_at=last, created=NOW, storage_class="longhorn")
            self.backups[volume] = records

    # --- the seam -------------------------------------------------------------------------
    def install(self, monkeypatch: pytest.MonkeyPatch) -> FakeCluster:
        def counted(name, fn):
            def wrapper(*args, **kwargs):
                self.calls[name] += 1
                if name in self.fail:
                    raise self.fail[name]
                return fn(*args, **kwargs)
            return wrapper

        for name in ("list_pvcs", "get_pvc", "find_pvc", "list_pvs", "get_pv", "list_storage_classes",
                     "namespace_exists", "create_event", "create_pv", "delete_pv", "create_pvc", "delete_pvc",
                     "list_pvcs_labelled", "find_secret", "get_secret", "create_secret", "replace_secret",
                     "find_lease", "create_lease", "replace_lease", "delete_lease", "list_leases", "list_pvs_labelled",
                     "list_config_maps", "find_config_map", "create_config_map", "replace_config_map",
                     "delete_config_map"):
            monkeypatch.setattr(kubernetes, name, counted(name, getattr(self, name)))
        for name in ("list_volumes", "get_volume", "list_backup_volumes", "list_backups", "create_snapshot",
                     "get_snapshot", "backup_snapshot", "create_volume", "delete_volume", "delete_backup",
                     "delete_snapshot", "list_snapshots", "expand_volume", "get_setting"):
            monkeypatch.setattr(longhorn, name, counted(name, getattr(self, name)))
        for name in ("list_volumes", "list_backup_volumes"):  # the inventory reads them from Longhorn's CRDs
            monkeypatch.setattr(longhorn_crd, name, counted(name, getattr(self, name)))
        for name in ("create_job", "list_jobs", "delete_job", "list_pods", "pod_log"):
            monkeypatch.setattr(workloads, name, counted(name, getattr(self, name)))
        return self

    @property
    def mutating_calls(self) -> dict[str, int]:
        return {k: v for k, v in self.calls.items() if k in MUTATING}

    def list_pvcs(self, namespace=None):
        return [p for p in self.pvcs.values() if namespace in (None, p.namespace)]

    def get_pvc(self, namespace, name):
        try:
            return self.pvcs[(namespace, name)]
        except KeyError:
            raise NotFound(f'persistentvolumeclaims "{name}" not found') from None

    def find_pvc(self, namespace, name):
        return self.pvcs.get((namespace, name))

    def list_pvs(self):
        return list(self.pvs.values())

    def get_pv(self, name):
        try:
            return self.pvs[name]
        except KeyError:
            raise NotFound(f'persistentvolumes "{name}" not found') from None

    def list_storage_classes(self):
        return list(self.classes.values())

    def namespace_exists(self, name):
        return name in self.namespaces

    def create_event(self, namespace, body):
        self.events.append(body)

    def list_volumes(self, completed_time=None):
        """With `completed_time`, Completed backups folded into counts, as longhorn_crd's does."""
        if completed_time is None:
            return list(self.volumes.values())
        folded = []
        for volume in self.volumes.values():
            done = [b for b in volume.backups if b.state == "Completed"]
            times = [t for t in (completed_time(b.snapshot) for b in done) if t]
            folded.append(replace(volume, backups=tuple(b for b in volume.backups if b.state != "Completed"),
                                  completed_backups=len(done), last_completed_at=max(times, default=None)))
        return folded

    def get_volume(self, name):
        return self.volumes.get(name)

    def list_backup_volumes(self):
        return list(self.backup_volumes.values())

    def list_backups(self, backup_volume):
        return sorted(self.backups.get(backup_volume, []), key=lambda b: b.created or NOW)

    def create_snapshot(self, volume, name, labels=None):
        if (volume, name) in self.snapshots:
            raise UpstreamError("longhorn", f"Longhorn failed: snapshot {name} already exists")
        self.snapshots[(volume, name)] = Snapshot(name=name, volume=volume, ready=True, error="", created=NOW)
        return self.snapshots[(volume, name)]

    def get_snapshot(self, volume, name):
        script = self.snapshot_script.get(name)
        if script:
            state = script.pop(0) if len(script) > 1 else script[0]
            self.snapshots[(volume, name)] = replace(state, name=name, volume=volume)
        return self.snapshots[(volume, name)]

    def list_snapshots(self, volume):
        return [s for (v, _), s in self.snapshots.items() if v == volume]

    def delete_snapshot(self, volume, name):
        self.snapshots.pop((volume, name), None)
        self.deleted_snapshots.append((volume, name))

    def add_snapshot(self, volume, name, created=NOW):
        self.snapshots[(volume, name)] = Snapshot(name=name, volume=volume, ready=True, error="", created=created)

    def set_backup_state(self, volume, snapshot, state, error=""):
        """The state of the backup of `snapshot` in the volume's backupStatus[]."""
        current = self.volumes[volume]
        self.volumes[volume] = replace(current, backups=tuple(
            replace(b, state=state, error=error, progress=100 if state == "Completed" else b.progress)
            if b.snapshot == snapshot else b for b in current.backups))

    def expand_volume(self, name, size):
        current = self.volumes[name]
        self.expanded.append((name, size))
        self.volumes[name] = replace(current, size=size)
        return self.volumes[name]

    def get_setting(self, name):
        return self.settings.get(name)

    def backup_snapshot(self, volume, snapshot, labels, mode):
        self.last_backup_call = {"volume": volume, "snapshot": snapshot, "labels": labels, "mode": mode}
        current = self.volumes[volume]
        entry = BackupStatus(name=f"backup-new-{len(current.backups)}", snapshot=snapshot, state="InProgress",
                             progress=10, url="", error="", size="")
        self.volumes[volume] = replace(current, backups=current.backups + (entry,))
        return self.volumes[volume]


    # --- restores ---------------------------------------------------------------------
    def create_volume(self, name, *, size, from_backup, number_of_replicas, access_mode="rwo",
                      stale_replica_timeout=30, data_engine="v1"):
        if name in self.volumes:
            raise UpstreamError("longhorn", f"volume {name} already exists")
        self.created_volume_args = {"name": name, "from_backup": from_backup, "replicas": number_of_replicas,
                                    "size": size}
        backup = next((b for records in self.backups.values() for b in records if b.url == from_backup), None)
        if backup is not None and backup.volume_size:
            size = backup.volume_size  # Longhorn's webhook overrides the requested size
        # A restoring volume attaches itself (the expand action needs attached or detached).
        self.volumes[name] = Volume(name=name, size=size, state="attached", robustness="unknown", ready=False,
                                    created=NOW, pv_name="", pvc_name="", pvc_namespace="", last_backup="",
                                    last_backup_at=None, backups=(), restore_required=True, restore_initiated=True,
                                    from_backup=from_backup)
        return self.volumes[name]

    def delete_volume(self, name):
        self.volumes.pop(name, None)

    def create_pv(self, body):
        name = body["metadata"]["name"]
        if name in self.pvs:
            from soteria_site.core.errors import Conflict
            raise Conflict(f'persistentvolumes "{name}" already exists', code="already_exists")
        spec = body["spec"]
        self.pvs[name] = Pv(name=name, phase="Available", storage_class=spec["storageClassName"],
                            capacity=spec["capacity"]["storage"], access_modes=tuple(spec["accessModes"]),
                            csi_driver=spec["csi"]["driver"], volume_handle=spec["csi"]["volumeHandle"],
                            fs_type=spec["csi"]["fsType"], claim_namespace=spec["claimRef"]["namespace"],
                            claim_name=spec["claimRef"]["name"], reclaim_policy=spec["persistentVolumeReclaimPolicy"],
                            labels=body["metadata"]["labels"])
        self.pv_bodies = getattr(self, "pv_bodies", []) + [body]
        return self.pvs[name]

    def delete_pv(self, name):
        self.pvs.pop(name, None)

    def create_pvc(self, namespace, body):
        name = body["metadata"]["name"]
        if (namespace, name) in self.pvcs:
            from soteria_site.core.errors import Conflict
            raise Conflict(f'persistentvolumeclaims "{name}" already exists', code="already_exists")
        spec = body["spec"]
        self.pvcs[(namespace, name)] = Pvc(
            namespace=namespace, name=name, uid=f"uid-{namespace}-{name}", phase="Pending",
            storage_class=spec["storageClassName"], volume_name=spec["volumeName"],
            access_modes=tuple(spec["accessModes"]), requested=spec["resources"]["requests"]["storage"],
            capacity=None, labels=body["metadata"]["labels"], annotations=body["metadata"]["annotations"])
        return self.pvcs[(namespace, name)]

    def delete_pvc(self, namespace, name):
        self.pvcs.pop((namespace, name), None)

    def list_pvcs_labelled(self, selector):
        return [p for p in self.pvcs.values() if _selects(selector, p.labels)]

    def list_pvs_labelled(self, selector):
        return [p for p in self.pvs.values() if _selects(selector, p.labels)]


    # --- secrets and leases, with resourceVersion compare-and-swap ------------------------------
    def _next_version(self) -> str:
        self._version += 1
        return str(self._version)

    def find_secret(self, namespace, name):
        return self.secrets.get((namespace, name))

    def get_secret(self, namespace, name):
        secret = self.find_secret(namespace, name)
        if secret is None:
            raise NotFound(f'secrets "{name}" not found')
        return secret

    def _secret(self, namespace, body) -> Secret:
        meta = body["metadata"]
        return Secret(namespace=namespace, name=meta["name"], resource_version=self._next_version(),
                      data={k: base64.b64decode(v) for k, v in (body.get("data") or {}).items()},
                      labels=meta.get("labels") or {}, uid=f"uid-secret-{meta['name']}")

    def create_secret(self, namespace, body):
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            if key in self.secrets:
                raise Conflict(f'secrets "{key[1]}" already exists', code="already_exists")
            self.secrets[key] = self._secret(namespace, body)
            return self.secrets[key]

    def replace_secret(self, namespace, name, body):
        with self._lock:
            current = self.get_secret(namespace, name)
            if body["metadata"].get("resourceVersion") not in (None, current.resource_version):
                raise Conflict("the object has been modified", code="conflict")
            self.secrets[(namespace, name)] = self._secret(namespace, body)
            return self.secrets[(namespace, name)]

    def _lease(self, namespace, body) -> Lease:
        spec = body["spec"]
        return Lease(namespace=namespace, name=body["metadata"]["name"], holder=spec["holderIdentity"],
                     renewed=parse_time(spec["renewTime"]), duration_seconds=spec["leaseDurationSeconds"],
                     resource_version=self._next_version(), transitions=spec.get("leaseTransitions", 0),
                     labels=dict(body["metadata"].get("labels") or {}),
                     annotations=dict(body["metadata"].get("annotations") or {}))

    def find_lease(self, namespace, name):
        return self.leases.get((namespace, name))

    def list_leases(self, namespace, label_selector):
        return [lease for (ns, _), lease in sorted(self.leases.items())
                if ns == namespace and _selects(label_selector, lease.labels)]

    def create_lease(self, namespace, body):
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            if key in self.leases:
                raise Conflict("already exists", code="already_exists")
            self.leases[key] = self._lease(namespace, body)
            return self.leases[key]

    def replace_lease(self, namespace, name, body):
        with self._lock:
            current = self.leases[(namespace, name)]
            if body["metadata"]["resourceVersion"] != current.resource_version:
                raise Conflict("the object has been modified", code="conflict")
            self.leases[(namespace, name)] = self._lease(namespace, body)
            return self.leases[(namespace, name)]

    def delete_lease(self, namespace, name, resource_version):
        with self._lock:
            current = self.leases.get((namespace, name))
            if current is None:
                return
            if current.resource_version != resource_version:
                raise Conflict("the object has been modified", code="conflict")
            del self.leases[(namespace, name)]

    # --- ConfigMaps, with resourceVersion compare-and-swap ----------------------------------------
    def _config_map(self, namespace, body) -> ConfigMap:
        meta = body["metadata"]
        return ConfigMap(namespace=namespace, name=meta["name"], data=dict(body.get("data") or {}),
                         resource_version=self._next_version(), labels=meta.get("labels") or {},
                         annotations=meta.get("annotations") or {}, binary_data=dict(body.get("binaryData") or {}))

    def list_config_maps(self, namespace, label_selector):
        return [c for (ns, _), c in sorted(self.config_maps.items()) if ns == namespace
                and _selects(label_selector, c.labels)]

    def find_config_map(self, namespace, name):
        return self.config_maps.get((namespace, name))

    def create_config_map(self, namespace, body):
        with self._lock:
            key = (namespace, body["metadata"]["name"])
            if key in self.config_maps:
                raise Conflict(f'configmaps "{key[1]}" already exists', code="already_exists")
            self.config_maps[key] = self._config_map(namespace, body)
            return self.config_maps[key]

    def replace_config_map(self, namespace, name, body):
        with self._lock:
            current = self.config_maps.get((namespace, name))
            if current is None:
                raise NotFound(f'configmaps "{name}" not found')
            if body["metadata"].get("resourceVersion") not in (None, current.resource_version):
                raise Conflict("the object has been modified", code="conflict")
            self.config_maps[(namespace, name)] = self._config_map(namespace, body)
            return self.config_maps[(namespace, name)]

    def delete_config_map(self, namespace, name):
        self.config_maps.pop((namespace, name), None)

    def delete_backup(self, backup_volume, name):
        self.backups[backup_volume] = [b for b in self.backups.get(backup_volume, []) if b.name != name]
        volume = self.volumes.get(backup_volume)
        if volume:
            self.volumes[backup_volume] = replace(volume, backups=tuple(b for b in volume.backups if b.name != name))


    # --- Jobs and pods ----------------------------------------------------------------------
    def create_job(self, namespace, body):
        meta = body["metadata"]
        key = (namespace, meta["name"])
        if key in self.jobs:
            raise Conflict(f'jobs.batch "{key[1]}" already exists', code="already_exists")
        self.job_bodies[key] = body
        self.jobs[key] = Job(namespace=namespace, name=meta["name"], uid=f"uid-job-{meta['name']}", state=RUNNING,
                             labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}),
                             created=NOW)
        return self.jobs[key]

    def run_job(self, namespace, name, state, ends=(), logs=None, finished=NOW):
        """Play the Job controller and the kubelet: the Job ends in `state` with one pod whose
        containers ended as `ends` (ContainerEnd), their logs `logs` (container -> text)."""
        job = self.jobs[(namespace, name)]
        self.jobs[(namespace, name)] = replace(job, state=state, started=job.created,
                                               finished=None if state == RUNNING else finished)
        pod = f"{name}-pod"
        self.pods = [p for p in self.pods if p.labels.get("job-name") != name]
        self.pods.append(Pod(namespace=namespace, name=pod, phase="Succeeded" if state == "Complete" else "Failed",
                             node_name="node-1", labels={**job.labels, "job-name": name}, containers=tuple(ends)))
        for container, text in (logs or {}).items():
            self.logs[(namespace, pod, container)] = text

    def list_jobs(self, label_selector, namespace=None):
        return [j for j in self.jobs.values() if namespace in (None, j.namespace) and _selects(label_selector, j.labels)]

    def delete_job(self, namespace, name):
        self.deleted_jobs.append((namespace, name))
        self.jobs.pop((namespace, name), None)
        self.pods = [p for p in self.pods if not (p.namespace == namespace and p.labels.get("job-name") == name)]

    def list_pods(self, label_selector=None, namespace=None):
        return [p for p in self.pods if namespace in (None, p.namespace)
                and (not label_selector or _selects(label_selector, p.labels))]

    def pod_log(self, namespace, name, container, tail_lines=40, limit_bytes=8192):
        text = self.logs.get((namespace, name, container), "")
        return "\n".join(text.splitlines()[-tail_lines:])[-limit_bytes:]


def _selects(selector: str, labels: dict[str, str]) -> bool:
    """Kubernetes' label selector terms, comma-joined: `k=v`, `k!=v`, `k in (a,b)`, `k` (exists), `!k`."""
    terms, depth, start = [], 0, 0
    for index, char in enumerate(selector or ""):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            terms.append(selector[start:index])
            start = index + 1
    terms.append((selector or "")[start:])
    for term in (t.strip() for t in terms if t.strip()):
        if " in " in term:
            key, values = term.split(" in ", 1)
            if labels.get(key.strip()) not in {v.strip() for v in values.strip().strip("()").split(",")}:
                return False
        elif "!=" in term:
            key, value = term.split("!=", 1)
            if labels.get(key) == value:
                return False
        elif "=" in term:
            key, value = term.split("=", 1)
            if labels.get(key) != value.lstrip("="):
                return False
        elif term.startswith("!"):
            if term[1:] in labels:
                return False
        elif term not in labels:
            return False
    return True


def track_concurrency(monkeypatch: pytest.MonkeyPatch, module, name: str, together: int):
    """Wrap a client function (after FakeCluster.install): each call waits until `together`
    calls are inside at once, so a batch that runs `together` at a time shows it, and one that
    runs more shows that. Returns a function answering the most that were inside at once.
    The number of calls must be a multiple of `together`."""
    inner = getattr(module, name)
    gate = threading.Barrier(together, timeout=10)
    lock = threading.Lock()
    state = {"inside": 0, "peak": 0}

    def tracked(*args, **kwargs):
        with lock:
            state["inside"] += 1
            state["peak"] = max(state["peak"], state["inside"])
        try:
            gate.wait()
            return inner(*args, **kwargs)
        finally:
            with lock:
                state["inside"] -= 1

    monkeypatch.setattr(module, name, tracked)
    return lambda: state["peak"]
