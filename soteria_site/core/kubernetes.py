"""The Kubernetes API, through the official client.

Built lazily from settings: the in-cluster config inside a pod, else
KUBECONFIG or ~/.kube/config. Every call has an explicit timeout, answers are
parsed straight from JSON into plain dataclasses (fast for large lists, and
independent of the client's model classes), and every failure becomes one of
Soteria's errors. Nothing else in Soteria imports the `kubernetes` package.
"""

from __future__ import annotations

import base64
import functools
import json
import logging
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import ijson
import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from .errors import Conflict, NotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .metrics import UPSTREAM_REQUESTS
from .timeparse import parse_time

log = logging.getLogger(__name__)
SYSTEM = "kubernetes"
LONGHORN_CSI_DRIVER = "driver.longhorn.io"


# --- Plain data -------------------------------------------------------------
@dataclass(frozen=True)
class Pvc:
    namespace: str
    name: str
    uid: str
    phase: str
    storage_class: str | None
    volume_name: str | None
    access_modes: tuple[str, ...]
    requested: str | None
    capacity: str | None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    deleting: bool = False


@dataclass(frozen=True)
class Pv:
    name: str
    phase: str
    storage_class: str | None
    capacity: str | None
    access_modes: tuple[str, ...]
    csi_driver: str | None
    volume_handle: str | None
    fs_type: str | None
    claim_namespace: str | None
    claim_name: str | None
    reclaim_policy: str | None
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class StorageClass:
    name: str
    provisioner: str
    parameters: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Secret:
    namespace: str
    name: str
    data: dict[str, bytes]
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    uid: str = ""
    annotations: dict[str, str] = field(default_factory=dict)


def _pvc(obj: dict) -> Pvc:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    return Pvc(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        uid=meta.get("uid", ""),
        phase=status.get("phase") or "Pending",
        storage_class=spec.get("storageClassName"),
        volume_name=spec.get("volumeName") or None,
        access_modes=tuple(spec.get("accessModes") or ()),
        requested=(spec.get("resources", {}).get("requests") or {}).get("storage"),
        capacity=(status.get("capacity") or {}).get("storage"),
        labels=meta.get("labels") or {},
        annotations=meta.get("annotations") or {},
        created=parse_time(meta.get("creationTimestamp")),
        deleting=bool(meta.get("deletionTimestamp")),
    )


def _pv(obj: dict) -> Pv:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    csi = spec.get("csi") or {}
    claim = spec.get("claimRef") or {}
    return Pv(
        name=meta.get("name", ""),
        phase=status.get("phase") or "Pending",
        storage_class=spec.get("storageClassName"),
        capacity=(spec.get("capacity") or {}).get("storage"),
        access_modes=tuple(spec.get("accessModes") or ()),
        csi_driver=csi.get("driver"),
        volume_handle=csi.get("volumeHandle"),
        fs_type=csi.get("fsType"),
        claim_namespace=claim.get("namespace"),
        claim_name=claim.get("name"),
        reclaim_policy=spec.get("persistentVolumeReclaimPolicy"),
        labels=meta.get("labels") or {},
    )


def _storage_class(obj: dict) -> StorageClass:
    return StorageClass(name=obj["metadata"]["name"], provisioner=obj.get("provisioner", ""),
                        parameters=obj.get("parameters") or {})


def _secret(obj: dict) -> Secret:
    meta = obj.get("metadata", {})
    return Secret(
        namespace=meta.get("namespace", ""),
        name=meta.get("name", ""),
        data={k: base64.b64decode(v) for k, v in (obj.get("data") or {}).items()},
        resource_version=meta.get("resourceVersion", ""),
        labels=meta.get("labels") or {},
        uid=meta.get("uid", ""),
        annotations=meta.get("annotations") or {},
    )


@dataclass(frozen=True)
class ConfigMap:
    namespace: str
    name: str
    data: dict[str, str]
    resource_version: str
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    binary_data: dict[str, str] = field(default_factory=dict)  # base64, as the API carries it


def _config_map(obj: dict) -> ConfigMap:
    meta = obj.get("metadata", {})
    return ConfigMap(namespace=meta.get("namespace", ""), name=meta.get("name", ""), data=obj.get("data") or {},
                     resource_version=meta.get("resourceVersion", ""), labels=meta.get("labels") or {},
                     annotations=meta.get("annotations") or {}, binary_data=obj.get("binaryData") or {})


# --- The client ---------------------------------------------------------------
_lock = threading.Lock()


class _NoRetryAfterTimeout(urllib3.util.Retry):
    """urllib3's retries, except after a read timeout: that request has already waited the whole
    timeout, and a second try would double it (a 2 s readiness probe would take 4 s)."""

    def increment(self, method=None, url=None, response=None, error=None, _pool=None, _stacktrace=None):
        if isinstance(error, urllib3.exceptions.ReadTimeoutError):
            raise error
        return super().increment(method, url, response, error, _pool, _stacktrace)


@functools.cache
def _api_client() -> k8s.ApiClient:
    configuration = k8s.Configuration()
    try:
        if settings.IN_CLUSTER:
            k8s_config.load_incluster_config(client_configuration=configuration)
        else:
            k8s_config.load_kube_config(config_file=settings.KUBECONFIG or None,
                                        client_configuration=configuration)
    except (ConfigException, OSError, TypeError, ValueError) as exc:
        raise UpstreamUnavailable(SYSTEM, f"no usable Kubernetes configuration: {exc}") from None
    # One quick retry on connection errors; timeouts are bounded by _request_timeout.
    configuration.retries = _NoRetryAfterTimeout(total=1)
    configuration.connection_pool_maxsize = 16
    return k8s.ApiClient(configuration)


def reset() -> None:
    """Forget the cached client (tests, or after KUBECONFIG changed)."""
    with _lock:
        _api_client.cache_clear()


def _timeout(timeout: float | None) -> tuple[float, float]:
    total = timeout if timeout is not None else settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS
    return (min(total, 5.0), total)


def _call(operation: str, fn: Callable[..., Any], *args: Any, timeout: float | None = None, count: bool = True,
          text: bool = False, raw: bool = False, **kwargs: Any) -> Any:
    """Run one API call; return its parsed JSON body (with `text`, its body as text; with `raw`, its
    bytes) or raise a Soteria error.

    Failures are always counted; a success only with `count` (list_pages counts a whole list once)."""
    try:
        response = fn(*args, _preload_content=False, _request_timeout=_timeout(timeout), **kwargs)
        data = response.data
    except ApiException as exc:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, f"http_{exc.status}").inc()
        if exc.status == 410 and kwargs.get("_continue"):
            raise _expired_continue(exc, operation) from None
        raise translate_api_exception(exc, operation) from None
    except (urllib3.exceptions.TimeoutError, TimeoutError) as exc:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "timeout").inc()
        raise UpstreamTimeout(SYSTEM, f"Kubernetes API did not answer {operation} in time: {exc}") from None
    except urllib3.exceptions.MaxRetryError as exc:
        # NewConnectionError subclasses ConnectTimeoutError in urllib3: refused is not slow.
        refused = isinstance(exc.reason, urllib3.exceptions.NewConnectionError)
        slow = isinstance(exc.reason, urllib3.exceptions.TimeoutError)
        outcome = "timeout" if slow and not refused else "unreachable"
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, outcome).inc()
        if outcome == "timeout":
            raise UpstreamTimeout(SYSTEM, f"Kubernetes API did not answer {operation} in time") from None
        raise UpstreamUnavailable(SYSTEM, f"Kubernetes API is unreachable: {exc.reason}") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "unreachable").inc()
        raise UpstreamUnavailable(SYSTEM, f"Kubernetes API is unreachable: {exc}") from None
    if count:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "ok").inc()
    if raw:
        return data or b""
    if text:
        return (data or b"").decode("utf-8", "replace")
    if not data:
        return {}
    try:
        return json.loads(data)
    except ValueError:
        raise UpstreamError(SYSTEM, f"Kubernetes API answered {operation} with something that is not JSON") from None


def translate_api_exception(exc: ApiException, operation: str) -> Exception:
    """An ApiException as the matching Soteria error, keeping the server's message."""
    message, reason = exc.reason or "", ""
    try:
        body = json.loads(exc.body or "{}")
        message = body.get("message") or message
        reason = body.get("reason") or ""
    except (TypeError, ValueError):
        pass
    if exc.status == 404:
        return NotFound(message or f"{operation}: not found")
    if exc.status == 409:
        return Conflict(message, code="already_exists" if reason == "AlreadyExists" else "conflict")
    if exc.status in (401, 403):
        return UpstreamError(SYSTEM, f"Kubernetes refused {operation} to Soteria: {message}",
                             upstream_status=exc.status)
    if exc.status == 504:
        return UpstreamTimeout(SYSTEM, f"Kubernetes timed out on {operation}: {message}")
    if exc.status in (429, 503):
        return UpstreamUnavailable(SYSTEM, f"Kubernetes is unavailable for {operation}: {message}")
    return UpstreamError(SYSTEM, f"Kubernetes rejected {operation}: {message}", upstream_status=exc.status)


class ContinueExpired(UpstreamError):
    """A paginated list outlived the snapshot its continue token points at (etcd compacted it,
    about five minutes after the list began). `resume` is the token the apiserver offers to read
    the rest of the list as it is now (an inconsistent list), or None when it offers none."""

    def __init__(self, operation: str, detail: str, resume: str | None) -> None:
        super().__init__(SYSTEM, f"Kubernetes API could not continue {operation}: {detail}", upstream_status=410)
        self.resume = resume


def _expired_continue(exc: ApiException, operation: str) -> ContinueExpired:
    try:
        body = json.loads(exc.body or "{}")
    except (TypeError, ValueError):
        body = {}
    body = body if isinstance(body, dict) else {}
    meta = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    resume = meta.get("continue") if isinstance(meta.get("continue"), str) else None
    return ContinueExpired(operation, str(body.get("message") or exc.reason or "continue token expired"),
                           resume or None)


def _core() -> k8s.CoreV1Api:
    return k8s.CoreV1Api(_api_client())


def _storage() -> k8s.StorageV1Api:
    return k8s.StorageV1Api(_api_client())


def _custom() -> k8s.CustomObjectsApi:
    return k8s.CustomObjectsApi(_api_client())


def _batch() -> k8s.BatchV1Api:
    return k8s.BatchV1Api(_api_client())


# --- Paginated lists ------------------------------------------------------------
PAGE_SIZE = 500


def list_pages(operation: str, fn: Callable[..., Any], *args: Any, page_size: int | None = None,
               **kwargs: Any) -> Iterator[list[dict]]:
    """The items of one list, a page at a time (`limit` + `continue`), so a caller can keep only
    what it needs of each page before the next is read. All pages of a list count as one call
    in the request counter; a failed page is counted as that list's failure and raised."""
    token, expired = None, 0
    while True:
        try:
            page = _call(operation, fn, *args, limit=page_size or PAGE_SIZE, count=False,
                         **({"_continue": token} if token else {}), **kwargs)
        except ContinueExpired as exc:
            token, expired = _resume(exc, expired), expired + 1
            continue
        expired = 0
        yield page.get("items") or []
        token = (page.get("metadata") or {}).get("continue")
        del page
        if not token:
            break
    UPSTREAM_REQUESTS.labels(SYSTEM, operation, "ok").inc()


def stream_items(operation: str, fn: Callable[..., Any], *args: Any, page_size: int | None = None,
                 **kwargs: Any) -> Iterator[dict]:
    """The items of one list, one at a time, for lists too large to hold (Longhorn's backups).

    Each page is kept as the bytes the apiserver sent and its items are built one by one as
    they are parsed (ijson), so a caller that keeps a few fields of each item holds one page of
    bytes and one item, never a page of dicts. While a page is parsed the next one is already
    being fetched (one background request), so Soteria's parsing overlaps the apiserver's
    serving instead of adding to it. Counted as one call, as list_pages."""
    size = page_size or PAGE_SIZE
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="soteria-list") as fetcher:
        def fetch(token: str | None):
            return fetcher.submit(_call, operation, fn, *args, limit=size, count=False, raw=True,
                                  **({"_continue": token} if token else {}), **kwargs)

        pending, expired = fetch(None), 0
        while pending is not None:
            try:
                body = pending.result()
            except ContinueExpired as exc:
                pending, expired = fetch(_resume(exc, expired)), expired + 1
                continue
            expired = 0
            token = _continue_token(operation, body)
            pending = fetch(token) if token else None
            yield from _parsed_items(operation, body)
            del body
    UPSTREAM_REQUESTS.labels(SYSTEM, operation, "ok").inc()


RESUMES = 3  # expirations in a row (no page read between) before a list gives up


def _resume(exc: ContinueExpired, expired: int) -> str:
    """The token the apiserver offers with its 410 to read the rest of a list whose snapshot
    expired: the items not read yet, as they are now. Objects created, changed or deleted
    while the list was read may or may not be in it; for an inventory that is a view of one
    moment anyway this is better than failing a list that takes minutes. Without a token (an
    apiserver that cannot offer one) the list fails: its callers have already used the items
    read so far, so starting again would count them twice."""
    if not exc.resume or expired >= RESUMES:
        raise exc
    log.warning("%s; reading the rest of the list as it is now", exc.detail)
    return exc.resume


def _continue_token(operation: str, body: bytes) -> str | None:
    """The list's `continue` token; the apiserver writes metadata before items, so this reads
    only the start of the page."""
    try:
        meta = next(ijson.items(body, "metadata"), None)
    except ijson.JSONError:
        raise UpstreamError(SYSTEM, f"Kubernetes API answered {operation} with something that is not JSON") from None
    return (meta or {}).get("continue") or None


def _parsed_items(operation: str, body: bytes) -> Iterator[dict]:
    try:
        yield from ijson.items(body, "items.item", use_float=True)
    except ijson.JSONError:
        raise UpstreamError(SYSTEM, f"Kubernetes API answered {operation} with something that is not JSON") from None


def custom_object_items(operation: str, group: str, version: str, namespace: str, plural: str, *,
                        page_size: int | None = None) -> Iterator[dict]:
    """A namespaced custom resource's objects, one at a time (see stream_items)."""
    return stream_items(operation, _custom().list_namespaced_custom_object, group, version, namespace, plural,
                        page_size=page_size)


def custom_object_pages(operation: str, group: str, version: str, namespace: str, plural: str, *,
                        label_selector: str | None = None, page_size: int | None = None) -> Iterator[list[dict]]:
    """A namespaced custom resource's objects, a page at a time (see list_pages)."""
    extra = {"label_selector": label_selector} if label_selector else {}
    return list_pages(operation, _custom().list_namespaced_custom_object, group, version, namespace, plural,
                      page_size=page_size, **extra)


# --- Operations ---------------------------------------------------------------
def server_version(timeout: float | None = None) -> str:
    data = _call("version", k8s.VersionApi(_api_client()).get_code, timeout=timeout)
    return data.get("gitVersion", "")


def list_pvcs(namespace: str | None = None) -> list[Pvc]:
    """Every PVC (of one namespace, or all): one list, read item by item (stream_items)."""
    if namespace:
        items = stream_items("pvcs.list", _core().list_namespaced_persistent_volume_claim, namespace)
    else:
        items = stream_items("pvcs.list", _core().list_persistent_volume_claim_for_all_namespaces)
    return [_pvc(item) for item in items]


def get_pvc(namespace: str, name: str) -> Pvc:
    return _pvc(_call("pvcs.get", _core().read_namespaced_persistent_volume_claim, name, namespace))


def find_pvc(namespace: str, name: str) -> Pvc | None:
    try:
        return get_pvc(namespace, name)
    except NotFound:
        return None


def list_pvs() -> list[Pv]:
    """Every PV: one list, read item by item (stream_items)."""
    return [_pv(item) for item in stream_items("pvs.list", _core().list_persistent_volume)]


def list_pvs_labelled(selector: str) -> list[Pv]:
    data = _call("pvs.list", _core().list_persistent_volume, label_selector=selector)
    return [_pv(item) for item in data.get("items", [])]


def get_pv(name: str) -> Pv:
    return _pv(_call("pvs.get", _core().read_persistent_volume, name))


def find_pv(name: str) -> Pv | None:
    try:
        return get_pv(name)
    except NotFound:
        return None


def list_storage_classes() -> list[StorageClass]:
    data = _call("storageclasses.list", _storage().list_storage_class)
    return [_storage_class(item) for item in data.get("items", [])]


def namespace_exists(name: str) -> bool:
    try:
        _call("namespaces.get", _core().read_namespace, name)
    except NotFound:
        return False
    return True


def get_secret(namespace: str, name: str) -> Secret:
    return _secret(_call("secrets.get", _core().read_namespaced_secret, name, namespace))


def create_secret(namespace: str, body: dict) -> Secret:
    return _secret(_call("secrets.create", _core().create_namespaced_secret, namespace, body))


def replace_secret(namespace: str, name: str, body: dict) -> Secret:
    """Replace a Secret; with metadata.resourceVersion set this is a compare-and-swap (409 on a stale one)."""
    return _secret(_call("secrets.replace", _core().replace_namespaced_secret, name, namespace, body))


def create_event(namespace: str, body: dict) -> None:
    _call("events.create", _core().create_namespaced_event, namespace, body)


def list_pvcs_labelled(selector: str) -> list[Pvc]:
    data = _call("pvcs.list", _core().list_persistent_volume_claim_for_all_namespaces, label_selector=selector)
    return [_pvc(item) for item in data.get("items", [])]


def create_pv(body: dict) -> Pv:
    return _pv(_call("pvs.create", _core().create_persistent_volume, body))


def delete_pv(name: str) -> None:
    """Delete a PV; one that is already gone counts as deleted."""
    try:
        _call("pvs.delete", _core().delete_persistent_volume, name)
    except NotFound:
        return


def create_pvc(namespace: str, body: dict) -> Pvc:
    return _pvc(_call("pvcs.create", _core().create_namespaced_persistent_volume_claim, namespace, body))


def delete_pvc(namespace: str, name: str) -> None:
    """Delete a PVC; one that is already gone counts as deleted."""
    try:
        _call("pvcs.delete", _core().delete_namespaced_persistent_volume_claim, name, namespace)
    except NotFound:
        return


@dataclass(frozen=True)
class Lease:
    namespace: str
    name: str
    holder: str
    renewed: datetime | None
    duration_seconds: int
    resource_version: str
    transitions: int = 0
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)


def _lease(obj: dict) -> Lease:
    meta, spec = obj.get("metadata", {}), obj.get("spec", {})
    return Lease(namespace=meta.get("namespace", ""), name=meta.get("name", ""), holder=spec.get("holderIdentity") or "",
                 renewed=parse_time(spec.get("renewTime")), duration_seconds=int(spec.get("leaseDurationSeconds") or 0),
                 resource_version=meta.get("resourceVersion", ""), transitions=int(spec.get("leaseTransitions") or 0),
                 labels=dict(meta.get("labels") or {}), annotations=dict(meta.get("annotations") or {}))


def _coordination() -> k8s.CoordinationV1Api:
    return k8s.CoordinationV1Api(_api_client())


def find_lease(namespace: str, name: str) -> Lease | None:
    try:
        return _lease(_call("leases.get", _coordination().read_namespaced_lease, name, namespace))
    except NotFound:
        return None


def list_leases(namespace: str, label_selector: str) -> list[Lease]:
    """The Leases with a label in one namespace (one list, paginated)."""
    pages = list_pages("leases.list", _coordination().list_namespaced_lease, namespace, label_selector=label_selector)
    return [_lease(item) for page in pages for item in page]


def create_lease(namespace: str, body: dict) -> Lease:
    return _lease(_call("leases.create", _coordination().create_namespaced_lease, namespace, body))


def replace_lease(namespace: str, name: str, body: dict) -> Lease:
    """Compare-and-swap on metadata.resourceVersion: a stale one raises Conflict."""
    return _lease(_call("leases.replace", _coordination().replace_namespaced_lease, name, namespace, body))


def delete_lease(namespace: str, name: str, resource_version: str) -> None:
    """Delete a Lease only if it is still at `resource_version` (Conflict if it changed); one
    already gone counts as deleted."""
    try:
        _call("leases.delete", _coordination().delete_namespaced_lease, name, namespace,
              body={"preconditions": {"resourceVersion": resource_version}})
    except NotFound:
        return


def delete_secret(namespace: str, name: str) -> None:
    """Delete a Secret; one that is already gone counts as deleted."""
    try:
        _call("secrets.delete", _core().delete_namespaced_secret, name, namespace)
    except NotFound:
        return


def find_secret(namespace: str, name: str) -> Secret | None:
    try:
        return get_secret(namespace, name)
    except NotFound:
        return None


# --- ConfigMaps ---------------------------------------------------------------------
def list_config_maps(namespace: str, label_selector: str) -> list[ConfigMap]:
    """ConfigMaps with a label in one namespace (one list, paginated)."""
    pages = list_pages("configmaps.list", _core().list_namespaced_config_map, namespace, label_selector=label_selector)
    return [_config_map(item) for page in pages for item in page]


def find_config_map(namespace: str, name: str) -> ConfigMap | None:
    try:
        return _config_map(_call("configmaps.get", _core().read_namespaced_config_map, name, namespace))
    except NotFound:
        return None


def create_config_map(namespace: str, body: dict) -> ConfigMap:
    return _config_map(_call("configmaps.create", _core().create_namespaced_config_map, namespace, body))


def replace_config_map(namespace: str, name: str, body: dict) -> ConfigMap:
    """With metadata.resourceVersion set, a compare-and-swap (Conflict on a stale one)."""
    return _config_map(_call("configmaps.replace", _core().replace_namespaced_config_map, name, namespace, body))


def delete_config_map(namespace: str, name: str) -> None:
    """Delete a ConfigMap; one that is already gone counts as deleted."""
    try:
        _call("configmaps.delete", _core().delete_namespaced_config_map, name, namespace)
    except NotFound:
        return
