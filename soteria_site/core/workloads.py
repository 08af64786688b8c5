"""Jobs and Pods through the Kubernetes API: what the restic driver's Jobs need.

A part of the Kubernetes client split by resource (kubernetes.py holds the SDK,
its configuration, the error translation and the storage resources); answers
are plain dataclasses, failures Soteria's errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .errors import NotFound
from .kubernetes import _batch, _call, _core, list_pages
from .timeparse import parse_time

# What a Job's state is, from its conditions.
RUNNING, COMPLETE, FAILED = "Running", "Complete", "Failed"


@dataclass(frozen=True)
class Job:
    namespace: str
    name: str
    uid: str
    state: str  # Running | Complete | Failed
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    created: datetime | None = None
    started: datetime | None = None
    finished: datetime | None = None
    # The Failed condition's reason and message (e.g. DeadlineExceeded, BackoffLimitExceeded).
    reason: str = ""
    message: str = ""


@dataclass(frozen=True)
class ContainerEnd:
    """How one container of a pod ended, or why it waits."""

    container: str
    exit_code: int | None
    reason: str
    message: str
    init: bool = False
    finished: datetime | None = None  # when it terminated


@dataclass(frozen=True)
class Pod:
    namespace: str
    name: str
    phase: str
    node_name: str
    labels: dict[str, str] = field(default_factory=dict)
    claims: tuple[str, ...] = ()
    reason: str = ""
    message: str = ""
    # Terminated containers (init containers first), then waiting ones (exit_code None).
    containers: tuple[ContainerEnd, ...] = ()
    created: datetime | None = None


def _job(obj: dict) -> Job:
    meta, status = obj.get("metadata", {}), obj.get("status", {})
    state, reason, message, finished = RUNNING, "", "", None
    for condition in status.get("conditions") or ():
        if condition.get("status") != "True":
            continue
        if condition.get("type") == "Complete":
            state, finished = COMPLETE, parse_time(condition.get("lastTransitionTime"))
        elif condition.get("type") == "Failed":
            state, finished = FAILED, parse_time(condition.get("lastTransitionTime"))
            reason, message = condition.get("reason") or "", condition.get("message") or ""
    return Job(namespace=meta.get("namespace", ""), name=meta.get("name", ""), uid=meta.get("uid", ""),
               state=state, labels=meta.get("labels") or {}, annotations=meta.get("annotations") or {},
               created=parse_time(meta.get("creationTimestamp")), started=parse_time(status.get("startTime")),
               finished=finished or parse_time(status.get("completionTime")), reason=reason, message=message)


def _ends(statuses: list[dict], init: bool) -> list[ContainerEnd]:
    ends = []
    for status in statuses or ():
        state = status.get("state") or {}
        terminated, waiting = state.get("terminated"), state.get("waiting")
        if terminated:
            ends.append(ContainerEnd(status.get("name", ""), terminated.get("exitCode"),
                                     terminated.get("reason") or "", terminated.get("message") or "", init,
                                     parse_time(terminated.get("finishedAt"))))
        elif waiting:
            ends.append(ContainerEnd(status.get("name", ""), None, waiting.get("reason") or "",
                                     waiting.get("message") or "", init))
    return ends


def _pod(obj: dict) -> Pod:
    meta, spec, status = obj.get("metadata", {}), obj.get("spec", {}), obj.get("status", {})
    claims = tuple((v.get("persistentVolumeClaim") or {}).get("claimName", "") for v in spec.get("volumes") or ()
                   if v.get("persistentVolumeClaim"))
    containers = _ends(status.get("initContainerStatuses"), True) + _ends(status.get("containerStatuses"), False)
    return Pod(namespace=meta.get("namespace", ""), name=meta.get("name", ""), phase=status.get("phase") or "Pending",
               node_name=spec.get("nodeName") or "", labels=meta.get("labels") or {}, claims=claims,
               reason=status.get("reason") or "", message=status.get("message") or "",
               containers=tuple(containers), created=parse_time(meta.get("creationTimestamp")))


# --- Jobs -------------------------------------------------------------------------------
def create_job(namespace: str, body: dict) -> Job:
    return _job(_call("jobs.create", _batch().create_namespaced_job, namespace, body))


def delete_job(namespace: str, name: str) -> None:
    """Delete a Job with its pods and what it owns (background propagation); one already
    gone counts as deleted."""
    try:
        _call("jobs.delete", _batch().delete_namespaced_job, name, namespace, propagation_policy="Background")
    except NotFound:
        return


def list_jobs(label_selector: str, namespace: str | None = None) -> list[Job]:
    """Jobs carrying a label, in one namespace or all (one list, paginated)."""
    if namespace:
        pages = list_pages("jobs.list", _batch().list_namespaced_job, namespace, label_selector=label_selector)
    else:
        pages = list_pages("jobs.list", _batch().list_job_for_all_namespaces, label_selector=label_selector)
    return [_job(item) for page in pages for item in page]


# --- Pods -------------------------------------------------------------------------------
def list_pods(label_selector: str | None = None, namespace: str | None = None) -> list[Pod]:
    """Pods (with a label, when given), in one namespace or all (one list, paginated)."""
    extra = {"label_selector": label_selector} if label_selector else {}
    if namespace:
        pages = list_pages("pods.list", _core().list_namespaced_pod, namespace, **extra)
    else:
        pages = list_pages("pods.list", _core().list_pod_for_all_namespaces, **extra)
    return [_pod(item) for page in pages for item in page]


def pod_log(namespace: str, name: str, container: str, tail_lines: int = 40, limit_bytes: int = 8192) -> str:
    """The end of one container's log ("" when the pod or its log is gone)."""
    try:
        return _call("pods.log", _core().read_namespaced_pod_log, name, namespace, container=container,
                     tail_lines=tail_lines, limit_bytes=limit_bytes, text=True)
    except NotFound:
        return ""
