"""The emulator's state as Longhorn custom resources in the sandbox's API server.

Longhorn keeps its state in CRs (`volumes`, `backups`, `backupvolumes`,
`snapshots` of `longhorn.io/v1beta2` in `longhorn-system`); its REST API is a
view of them. The emulator keeps its own store and mirrors it into CRs, as
the manager's controllers would write them:

- every store change marks the object dirty; one thread renders dirty objects
  and writes them with a pool of HTTP connections (create, or merge-patch when
  it exists; delete when the record is gone), skipping writes whose content
  has not changed since the last one;
- running backups are re-rendered twice a second and snapshots that are not
  ready yet on every pass, so a Backup CR moves "" -> InProgress (rising
  progress) -> Completed at the pace of the REST view;
- at start-up (and after a reset) it lists what the API server holds, writes
  what differs from the store and deletes what the store no longer has, so a
  restarted emulator (journal replay) and the CRs agree again.

The CRDs are (re)registered at start-up from `crds.py`.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote

from . import backups
from .constants import NODE
from .crds import GROUP, NAMESPACE, VERSION, definitions
from .volume_view import engine_running, robustness

log = logging.getLogger(__name__)

KINDS = {"volume": "volumes", "backup": "backups", "backupvolume": "backupvolumes", "snapshot": "snapshots"}
TABLES = {"volumes": "volume", "backups": "backup", "backup_volumes": "backupvolume", "snapshots": "snapshot"}
PASS_SECONDS = 0.1
LIVE_SECONDS = 0.5  # how often running backups' progress is re-rendered (Longhorn's monitor: a few seconds)
BATCH = 2000
LIST_LIMIT = 1000
TIMEOUT = 30


def _strip(value):
    """The object without null fields (what a create stores)."""
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if v is not None}
    return value


def _digest(labels: dict | None, spec: dict | None, status: dict | None) -> int:
    return hash(json.dumps([labels or {}, _strip(spec or {}), _strip(status or {})], sort_keys=True,
                           separators=(",", ":")))


# Rendering: store records -> CR bodies (labels, spec, status) -------------------------
def render_backup(emu, b: dict, now: float) -> tuple[dict, dict, dict]:
    state, progress = backups.view(emu, b, now)
    labels = {"backup-volume": b["volume"]}
    if emu.v18:
        labels["backup-target"] = b["target"]
    spec = {"snapshotName": b["snapshot"], "labels": b["specLabels"] or None, "backupMode": b["backupMode"],
            "syncRequestedAt": None}
    synced = b.get("syncedAt") or (b["created"] if state == "Completed" else None)
    status = {
        # Longhorn's BackupStatus omits an empty error (json:"error,omitempty", v1beta2/backup.go).
        "ownerID": NODE, "state": state, "progress": progress, "url": b["url"], "error": b["error"] or None,
        "snapshotName": b["snapshot"], "snapshotCreatedAt": b["snapshotCreated"], "backupCreatedAt": b["created"],
        "size": b["size"], "labels": b["labels"], "messages": b["messages"] or None,
        "volumeName": b["volume"], "volumeSize": b["volumeSize"], "volumeCreated": b["volumeCreated"],
        "volumeBackingImageName": "", "compressionMethod": b["compressionMethod"], "replicaAddress": "",
        "newlyUploadDataSize": b["newlyUploaded"], "reUploadedDataSize": b["reUploaded"], "lastSyncedAt": synced,
    }
    if emu.v18:
        status["backupTargetName"] = b["target"]
    return labels, spec, status


def render_backup_volume(emu, bv: dict, now: float) -> tuple[dict, dict, dict]:
    labels, spec = {}, {"syncRequestedAt": None}
    if emu.v18:
        labels = {"backup-volume": bv["volume"], "backup-target": bv["target"]}
        spec.update(volumeName=bv["volume"], backupTargetName=bv["target"])
    status = {
        "ownerID": NODE, "createdAt": bv["created"], "lastBackupName": bv["lastBackupName"],
        "lastBackupAt": bv["lastBackupAt"], "size": bv["size"], "labels": bv["labels"],
        "dataStored": bv["dataStored"], "messages": bv["messages"] or None, "backingImageName": "",
        "backingImageChecksum": "", "storageClassName": bv["storageClassName"],
        "lastModificationTime": bv["lastBackupAt"] or bv["created"] or None,
        "lastSyncedAt": bv["lastBackupAt"] or bv["created"] or None,
    }
    return labels, spec, status


def render_volume(emu, v: dict, now: float) -> tuple[dict, dict, dict]:
    store = emu.store
    bv = store.get("backup_volumes", emu.bv_id(v["name"]))
    labels = {}
    if emu.v18:
        labels["backup-target"] = v["backupTargetName"]
    if v["restoredFromBV"]:
        labels["backup-volume"] = (store.get("backup_volumes", v["restoredFromBV"]) or {}).get(
            "volume", v["restoredFromBV"])
    spec = {key: v[key] for key in (
        "frontend", "fromBackup", "numberOfReplicas", "dataLocality", "accessMode", "staleReplicaTimeout",
        "dataEngine", "image", "encrypted", "migratable", "backupCompressionMethod", "diskSelector",
        "nodeSelector", "disableFrontend", "restoreVolumeRecurringJob", "revisionCounterDisabled")}
    spec.update(size=str(v["size"]), Standby=v["standby"], nodeID=v["nodeID"], lastAttachedBy=v["lastAttachedBy"],
                snapshotMaxCount=emu.snapshot_max_count(v), snapshotMaxSize=str(v["snapshotMaxSize"]))
    if emu.v18:
        spec["backupTargetName"] = v["backupTargetName"]
    running = engine_running(v)
    snaps = store.records_for_volume("snapshots", v["name"])
    status = {
        "ownerID": NODE, "state": v["state"], "robustness": robustness(v),
        "currentNodeID": NODE if running else "", "currentImage": emu.engine_image if running else "",
        "kubernetesStatus": v["kubernetesStatus"], "conditions": list(v["conditions"].values()),
        "lastBackup": bv["lastBackupName"] if bv else "", "lastBackupAt": bv["lastBackupAt"] if bv else "",
        "restoreRequired": v["restoreRequired"], "restoreInitiated": v["restoreInitiated"], "isStandby": False,
        "actualSize": sum(s["size"] for s in snaps), "frontendDisabled": v["disableFrontend"],
        "expansionRequired": False, "shareState": "", "shareEndpoint": "", "lastDegradedAt": "",
        "pendingNodeID": "", "currentMigrationNodeID": "", "remountRequestedAt": "",
        "cloneStatus": {"sourceVolume": "", "snapshot": "", "state": ""},
    }
    return labels, spec, status


def render_snapshot(emu, s: dict, now: float) -> tuple[dict, dict, dict]:
    from .snapshots import cr_fields

    fields = cr_fields(emu, s, now)
    spec = {"volume": s["volume"], "createSnapshot": True, "labels": s["labels"] or None}
    status = {key: fields[key] for key in ("parent", "children", "markRemoved", "userCreated", "creationTime",
                                           "size", "ownerID", "error", "restoreSize", "readyToUse", "checksum")}
    status["labels"] = s["labels"] or None
    status["error"] = status["error"] or None  # json:"error,omitempty" (v1beta2/snapshot.go)
    return {"longhornvolume": s["volume"]}, spec, status


RENDER = {"volume": render_volume, "backup": render_backup, "backupvolume": render_backup_volume,
          "snapshot": render_snapshot}


class KubeHttp:
    """Plain HTTPS to the API server with the kubeconfig's credentials (a pool of connections)."""

    def __init__(self, kubeconfig: Path, pool: int):
        import urllib3
        from kubernetes import client, config

        cfg = client.Configuration()
        config.load_kube_config(config_file=str(kubeconfig), client_configuration=cfg)
        self.base = cfg.host.rstrip("/")
        self.headers = {"Accept": "application/json"}
        self.headers.update(cfg.auth_settings().get("BearerToken") and {
            "Authorization": cfg.get_api_key_with_prefix("BearerToken")} or {})
        self.http = urllib3.PoolManager(num_pools=2, maxsize=pool, block=True, ca_certs=cfg.ssl_ca_cert,
                                        cert_reqs="CERT_REQUIRED" if cfg.verify_ssl else "CERT_NONE",
                                        timeout=urllib3.Timeout(connect=5, read=TIMEOUT), retries=False)

    def call(self, method: str, path: str, body=None, content_type: str = "application/json"):
        headers = dict(self.headers)
        data = None
        if body is not None:
            data = json.dumps(body, separators=(",", ":")).encode()
            headers["Content-Type"] = content_type
        response = self.http.request(method, self.base + path, body=data, headers=headers)
        payload = None
        if response.data:
            try:
                payload = json.loads(response.data)
            except ValueError:
                payload = {"message": response.data[:200].decode(errors="replace")}
        return response.status, payload




class EtcdCreates:
    """New CRs written straight into etcd, where the API server keeps them, for seeding
    benchmarks with hundreds of thousands of Backups: the API server creates about 60 a second
    on the development machine, etcd takes thousands in transactions of up to 128 writes
    (its default limit). Each object is what the API server would have stored (apiVersion,
    kind, metadata with uid, creationTimestamp, generation and managedFields, spec, status);
    the API server's watch cache sees the writes as any others, and lists, gets and patches
    through the API server then work as for any object. Off unless the emulator is started
    with --etcd-url; changes and deletes always go through the API server."""

    TXN_OPS = 128

    def __init__(self, url: str, namespace: str) -> None:
        import urllib3

        self.url = url.rstrip("/")
        self.namespace = namespace
        self.http = urllib3.PoolManager(maxsize=4, timeout=urllib3.Timeout(connect=5, read=TIMEOUT), retries=False)

    def key(self, kind: str, name: str) -> str:
        return f"/registry/{GROUP}/{KINDS[kind]}/{self.namespace}/{name}"

    def object(self, kind: str, name: str, labels: dict, spec: dict, status: dict, now: str) -> dict:
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": _KIND_NAMES[kind],
                "metadata": {"creationTimestamp": now, "generation": 1, "labels": labels, "name": name,
                             "namespace": self.namespace, "uid": str(uuid.uuid4())},
                "spec": _strip(spec), "status": _strip(status)}
        fields = {"f:metadata": {"f:labels": _field_set(labels)}, "f:spec": _field_set(body["spec"]),
                  "f:status": _field_set(body["status"])}
        body["metadata"]["managedFields"] = [{"apiVersion": f"{GROUP}/{VERSION}", "fieldsType": "FieldsV1",
                                              "fieldsV1": fields, "manager": "longhorn-manager",
                                              "operation": "Update", "time": now}]
        return body

    def create(self, objects: list[tuple[str, dict]]) -> None:
        """Put (key, object) pairs that do not exist yet, a few transactions at a time; raises
        if a transaction failed."""
        batches = [objects[start:start + self.TXN_OPS] for start in range(0, len(objects), self.TXN_OPS)]
        with ThreadPoolExecutor(max_workers=4, thread_name_prefix="longhorn-etcd") as pool:
            list(pool.map(self._txn, batches))

    def _txn(self, batch: list[tuple[str, dict]]) -> None:
        # Only when none of the keys exists (create_revision 0), as a create would.
        txn = {"compare": [{"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}
                           for key, _ in batch],
               "success": [{"requestPut": {"key": _b64(key),
                                           "value": _b64(json.dumps(obj, separators=(",", ":")))}}
                           for key, obj in batch]}
        response = self.http.request("POST", f"{self.url}/v3/kv/txn", body=json.dumps(txn).encode(),
                                     headers={"Content-Type": "application/json"})
        answer = json.loads(response.data or b"{}")
        if response.status != 200 or not answer.get("succeeded"):
            raise RuntimeError(f"etcd create of {len(batch)} CRs: {response.status} "
                               f"{'some exist already' if response.status == 200 else answer}")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _field_set(value) -> dict:
    """The fieldsV1 of a map, as the API server records a manager's fields."""
    if not isinstance(value, dict):
        return {}
    return {".": {}, **{f"f:{key}": _field_set(item) for key, item in value.items()}}


class CrMirror:
    def __init__(self, emu, kubeconfig: Path, namespace: str = NAMESPACE, workers: int = 16,
                 etcd_url: str | None = None):
        self.emu = emu
        self.etcd = EtcdCreates(etcd_url, namespace) if etcd_url else None
        self.namespace = namespace
        self.kubeconfig = kubeconfig
        self.workers = workers
        self._http: KubeHttp | None = None
        self._lock = threading.Lock()
        self._dirty: dict[tuple[str, str], None] = {}
        self._written: dict[str, int] = {}  # "kind/name" -> digest of what the API server holds
        self._unready: set[str] = set()  # snapshots whose readiness moves with the clock
        self._live_at = 0.0
        self._resync = threading.Event()
        self._resync.set()
        self._ready = False
        self._busy = False
        self.stats = {"writes": 0, "deletes": 0, "errors": 0, "resyncs": 0}
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="longhorn-cr")

    # Hooks from the store -------------------------------------------------------------
    def changed(self, table: str, key: str, old: dict | None, new: dict | None) -> None:
        kind = TABLES.get(table)
        if kind is None:
            return
        with self._lock:
            self._dirty[(kind, key)] = None
            if kind == "backupvolume":  # a volume's lastBackup comes from its backup volume
                record = new or old
                self._dirty[("volume", record["volume"])] = None
            elif kind == "snapshot":
                record = new or old
                self._dirty[("volume", record["volume"])] = None

    def cleared(self) -> None:
        self._resync.set()

    # Status for the control API ---------------------------------------------------------
    def status(self) -> dict:
        with self._lock:
            pending = len(self._dirty)
        return {"enabled": True, "ready": self._ready, "pending": pending, "busy": self._busy,
                "resyncPending": self._resync.is_set(), "objects": len(self._written), **self.stats,
                "lastError": self.last_error}

    def idle(self) -> bool:
        with self._lock:
            return self._ready and not self._dirty and not self._busy and not self._resync.is_set()

    # Lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="longhorn-cr-mirror", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=TIMEOUT)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if not self._ready:
                    self._register()
                    self._ready = True
                if self._resync.is_set():
                    self._busy = True  # not idle while the lists are compared with the store
                    try:
                        self._resync.clear()
                        self._full_resync()
                    except Exception:
                        self._resync.set()  # the API server failed part-way: compare again on the next pass
                        raise
                    finally:
                        self._busy = False
                self._mark_live()
                if not self._flush():
                    self._stop.wait(PASS_SECONDS)
                failures = 0
            except Exception as exc:  # the API server may be down for a while: keep trying
                failures += 1
                self.last_error = str(exc)
                if failures == 1:
                    log.warning("Longhorn CR mirror: %s", exc)
                self._stop.wait(min(5.0, 0.2 * failures))

    def _collection(self, plural: str) -> str:
        return f"/apis/{GROUP}/{VERSION}/namespaces/{self.namespace}/{plural}"

    # Registration ----------------------------------------------------------------------
    def http(self) -> KubeHttp:
        if self._http is None:
            self._http = KubeHttp(self.kubeconfig, self.workers)
        return self._http

    def _register(self) -> None:
        http = self.http()
        status, body = http.call("POST", "/api/v1/namespaces", {"metadata": {"name": self.namespace}})
        if status not in (200, 201, 409):
            raise RuntimeError(f"cannot create namespace {self.namespace}: {status} {body}")
        for crd in definitions():
            path = f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{crd['metadata']['name']}"
            status, current = http.call("GET", path)
            if status == 404:
                status, body = http.call("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
            elif status == 200 and current["spec"].get("versions") != crd["spec"]["versions"]:
                crd = {**crd, "metadata": {**crd["metadata"],
                                           "resourceVersion": current["metadata"]["resourceVersion"]}}
                status, body = http.call("PUT", path, crd)
            if status not in (200, 201):
                raise RuntimeError(f"cannot register {crd['metadata']['name']}: {status} {current}")
        deadline = time.monotonic() + 60
        for plural in KINDS.values():  # established: the collection answers
            while http.call("GET", self._collection(plural) + "?limit=1")[0] != 200:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"CRD {plural}.{GROUP} not established")
                time.sleep(0.1)
        log.info("Longhorn CRDs registered in the API server")

    # Keeping up -----------------------------------------------------------------------
    def _mark_live(self) -> None:
        """Backups whose state or progress moves with the clock (stuck Pending ones do not:
        they change through the store) and snapshots not ready yet."""
        emu = self.emu
        now = time.monotonic()
        if now - self._live_at < LIVE_SECONDS:
            return
        self._live_at = now
        live = []
        for name in list(emu.active_backups):
            record = emu.store.get("backups", name)
            if record is not None and backups.is_live(record):
                live.append(name)
        with self._lock:
            for name in live:
                self._dirty[("backup", name)] = None
            for name in list(self._unready):
                self._dirty[("snapshot", name)] = None

    def _render(self, kind: str, name: str, now: float):
        table = {"volume": "volumes", "backup": "backups", "backupvolume": "backup_volumes",
                 "snapshot": "snapshots"}[kind]
        record = self.emu.store.get(table, name)
        if record is None:
            return None
        if kind == "snapshot":
            if record["readyAt"] > now:
                self._unready.add(name)
            else:
                self._unready.discard(name)
        return RENDER[kind](self.emu, record, now)

    def _flush(self) -> bool:
        """Write one batch of dirty objects; False when nothing needed writing."""
        with self._lock:
            if not self._dirty:
                return False
            keys = []
            for key in self._dirty:
                keys.append(key)
                if len(keys) >= BATCH:
                    break
            for key in keys:
                del self._dirty[key]
            self._busy = True
        try:
            now = time.time()
            jobs = []
            with self.emu.store.lock:
                for kind, name in keys:
                    jobs.append((kind, name, self._render(kind, name, now)))
            work = []
            for kind, name, rendered in jobs:
                ref = f"{kind}/{name}"
                if rendered is None:
                    if ref in self._written:
                        work.append((kind, name, None, None))
                    continue
                digest = _digest(*rendered)
                if self._written.get(ref) != digest:
                    work.append((kind, name, rendered, digest))
            if work and self.etcd is not None:
                work = self._create_in_etcd(work)
            if work:
                list(self._pool.map(self._push, work))
        finally:
            self._busy = False
        with self._lock:
            more = bool(self._dirty)
        return bool(work) or more

    def _create_in_etcd(self, work: list) -> list:
        """Write the objects the API server does not hold yet straight into etcd; the rest
        (changes and deletes) is left for the API server."""
        creates, rest = [], []
        for job in work:
            (creates if job[2] is not None and f"{job[0]}/{job[1]}" not in self._written else rest).append(job)
        if not creates:
            return work
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        try:
            self.etcd.create([(self.etcd.key(kind, name), self.etcd.object(kind, name, *rendered, now))
                              for kind, name, rendered, _ in creates])
        except Exception:
            self.stats["errors"] += 1
            return work  # through the API server after all (a create that finds the object patches it)
        for kind, name, _, digest in creates:
            self._written[f"{kind}/{name}"] = digest
        self.stats["writes"] += len(creates)
        return rest

    def _push(self, job) -> None:
        kind, name, rendered, digest = job
        ref, path = f"{kind}/{name}", f"{self._collection(KINDS[kind])}/{quote(name)}"
        http = self.http()
        try:
            if rendered is None:
                status, body = http.call("DELETE", path)
                if status not in (200, 202, 404):
                    raise RuntimeError(f"DELETE {ref}: {status} {(body or {}).get('message')}")
                self._written.pop(ref, None)
                self.stats["deletes"] += 1
                return
            labels, spec, status_ = rendered
            if ref in self._written:
                status, body = self._patch(path, labels, spec, status_)
                if status == 404:
                    status, body = self._create(kind, name, labels, spec, status_)
            else:
                status, body = self._create(kind, name, labels, spec, status_)
                if status == 409:
                    status, body = self._patch(path, labels, spec, status_)
            if status not in (200, 201):
                raise RuntimeError(f"write {ref}: {status} {(body or {}).get('message')}")
            self._written[ref] = digest
            self.stats["writes"] += 1
        except Exception as exc:
            self.stats["errors"] += 1
            self.last_error = str(exc)
            with self._lock:
                self._dirty[(kind, name)] = None  # try again on a later pass
            raise

    def _create(self, kind, name, labels, spec, status):
        body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": _KIND_NAMES[kind],
                "metadata": {"name": name, "namespace": self.namespace, "labels": labels},
                "spec": _strip(spec), "status": _strip(status)}
        return self.http().call("POST", self._collection(KINDS[kind]), body)

    def _patch(self, path, labels, spec, status):
        body = {"metadata": {"labels": labels}, "spec": spec, "status": status}
        return self.http().call("PATCH", path, body, "application/merge-patch+json")

    # Start-up and reset ------------------------------------------------------------------
    def _full_resync(self) -> None:
        """Compare every CR the API server holds with the store; queue what differs."""
        http = self.http()
        self.stats["resyncs"] += 1
        seen: dict[str, int] = {}
        for kind, plural in KINDS.items():
            token = ""
            while True:
                query = f"?limit={LIST_LIMIT}" + (f"&continue={quote(token)}" if token else "")
                status, body = http.call("GET", self._collection(plural) + query)
                if status != 200:
                    raise RuntimeError(f"cannot list {plural}: {status} {(body or {}).get('message')}")
                for item in body["items"]:
                    seen[f"{kind}/{item['metadata']['name']}"] = _digest(
                        item["metadata"].get("labels"), item.get("spec"), item.get("status"))
                token = body["metadata"].get("continue") or ""
                if not token:
                    break
        self._written = seen
        with self.emu.store.lock:  # never the store's lock inside ours: the store calls us holding its own
            wanted = {(kind, key) for table, kind in TABLES.items() for key in self.emu.store.tables[table]}
        with self._lock:
            for ref in seen:
                kind, name = ref.split("/", 1)
                if (kind, name) not in wanted:
                    self._dirty[(kind, name)] = None
            for key in wanted:
                self._dirty[key] = None
        log.info("Longhorn CR mirror: %d objects in the API server, %d in the store", len(seen), len(wanted))


_KIND_NAMES = {"volume": "Volume", "backup": "Backup", "backupvolume": "BackupVolume", "snapshot": "Snapshot"}
