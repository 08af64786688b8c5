"""Kubernetes Events on PVCs: the audit trail `kubectl describe pvc` shows."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from . import kubernetes
from .errors import SoteriaError
from .kubernetes import Pvc
from .names import DNS_SUBDOMAIN_MAX, fit_name

log = logging.getLogger(__name__)
COMPONENT = "soteria"


def emit_on_pvc(pvc: Pvc, reason: str, message: str, *, warning: bool = False) -> None:
    """Record an Event on the PVC. A failure to record is logged, never fatal."""
    emit("PersistentVolumeClaim", pvc.namespace, pvc.name, pvc.uid, reason, message, warning=warning)


def event_name(name: str) -> str:
    """`<object name>.<16 random hex>`, as kubectl's recorders name Events; an object name too
    long for that (a PVC name may have 253 characters) keeps its start and gets a hash."""
    return fit_name(name, DNS_SUBDOMAIN_MAX, suffix=f".{uuid.uuid4().hex[:16]}")


def emit(kind: str, namespace: str, name: str, uid: str, reason: str, message: str, *,
              warning: bool = False) -> None:
    """Record an Event on any namespaced core object (a PVC, the policy Secret)."""
    now = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    body = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": event_name(name), "namespace": namespace},
        "involvedObject": {"apiVersion": "v1", "kind": kind, "namespace": namespace, "name": name, "uid": uid},
        "reason": reason,
        "message": message[:1024],
        "type": "Warning" if warning else "Normal",
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    }
    try:
        kubernetes.create_event(namespace, body)
    except SoteriaError as exc:
        log.warning("could not record event %s on %s %s/%s: %s", reason, kind, namespace, name, exc.detail)
