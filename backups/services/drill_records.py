"""Where Soteria keeps what proves a PVC's backups: one ConfigMap per PVC in Soteria's namespace.

Soteria's database is disposable (an emptyDir), and a backup's manifest or a drill's verdict
must outlive a restart, so both live in Kubernetes, beside the policies:

  soteria-verify-<namespace>.<pvc>   labels app.kubernetes.io/managed-by=soteria,
                                     soteria.io/record=verification
    manifests.json   {key: {"manifest": {...}, "recorded_at": "..."}}, the newest MANIFESTS_KEPT
                     (key: the restic backup Job's name, or the Longhorn snapshot's name)
    drills.json      the newest SOTERIA_DRILL_HISTORY drills, newest first

Every write is a compare-and-swap on the ConfigMap's resourceVersion, retried, so concurrent
writers (a drill and a manifest collection) lose nothing. Reading all records is one list.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from django.conf import settings

from soteria_site.core import kubernetes, names
from soteria_site.core.errors import Conflict, UpstreamError
from soteria_site.core.timeparse import format_time, parse_time

from ..manifests import Manifest, ManifestUnreadable, from_json

log = logging.getLogger(__name__)
SELECTOR = "app.kubernetes.io/managed-by=soteria,soteria.io/record=verification"
PREFIX = "soteria-verify-"
MANIFESTS_KEPT = 5
WRITE_ATTEMPTS = 8


@dataclass
class Record:
    namespace: str
    pvc: str
    manifests: dict[str, dict] = field(default_factory=dict)
    drills: list[dict] = field(default_factory=list)

    def manifest(self, key: str) -> Manifest | None:
        stored = self.manifests.get(key)
        if not stored:
            return None
        try:
            return from_json(stored["manifest"])
        except (ManifestUnreadable, KeyError, TypeError):
            log.warning("stored manifest %s of %s/%s is unreadable", key, self.namespace, self.pvc)
            return None

    def add_manifest(self, key: str, manifest: Manifest, recorded_at: datetime) -> None:
        self.manifests[key] = {"manifest": manifest.to_json(), "recorded_at": format_time(recorded_at)}
        newest = sorted(self.manifests.items(), key=lambda kv: kv[1].get("recorded_at") or "", reverse=True)
        self.manifests = dict(newest[:MANIFESTS_KEPT])

    def put_drill(self, drill: dict) -> None:
        """Insert or replace (by id) a drill, newest first, keeping SOTERIA_DRILL_HISTORY."""
        others = [d for d in self.drills if d.get("id") != drill["id"]]
        self.drills = sorted([drill, *others], key=lambda d: d.get("started_at") or "",
                             reverse=True)[:settings.SOTERIA_DRILL_HISTORY]

    def last_finished(self) -> dict | None:
        return next((d for d in self.drills if d.get("result") != "running"), None)

    def last_verdict(self) -> dict | None:
        """The newest drill that reached a verdict on the backup (an `error` drill did not)."""
        return next((d for d in self.drills if d.get("result") in ("passed", "failed", "unverified")), None)

    def last_passed(self) -> dict | None:
        return next((d for d in self.drills if d.get("result") == "passed"), None)


def name_of(namespace: str, pvc: str) -> str:
    return names.fit_name(f"{PREFIX}{namespace}.{pvc}", names.DNS_SUBDOMAIN_MAX)


def _namespace() -> str:
    return settings.SOTERIA_SECRET_NAMESPACE


def _decode(cm: kubernetes.ConfigMap) -> Record:
    namespace = cm.annotations.get("soteria.io/namespace", "")
    pvc = cm.annotations.get("soteria.io/pvc", "")
    record = Record(namespace, pvc)
    try:
        record.manifests = json.loads(cm.data.get("manifests.json") or "{}")
        record.drills = json.loads(cm.data.get("drills.json") or "[]")
        if (not isinstance(record.manifests, dict) or not isinstance(record.drills, list)
                or not all(isinstance(m, dict) for m in record.manifests.values())
                or not all(isinstance(d, dict) for d in record.drills)):
            raise ValueError("wrong shape")
    except ValueError:
        log.error("ConfigMap %s/%s is not a readable verification record; it will be rewritten", cm.namespace,
                  cm.name)
        record.manifests, record.drills = {}, []
    return record


def _body(record: Record, resource_version: str = "") -> dict:
    metadata = {"name": name_of(record.namespace, record.pvc), "namespace": _namespace(),
                "labels": {"app.kubernetes.io/managed-by": "soteria", "soteria.io/record": "verification",
                           "soteria.io/namespace": record.namespace, "soteria.io/pvc": names.label_value(record.pvc)},
                "annotations": {"soteria.io/namespace": record.namespace, "soteria.io/pvc": record.pvc}}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata,
            "data": {"manifests.json": json.dumps(record.manifests, sort_keys=True, separators=(",", ":")),
                     "drills.json": json.dumps(record.drills, sort_keys=True, separators=(",", ":"))}}


def load(namespace: str, pvc: str) -> Record:
    cm = kubernetes.find_config_map(_namespace(), name_of(namespace, pvc))
    if cm is None:
        return Record(namespace, pvc)
    record = _decode(cm)
    record.namespace, record.pvc = namespace, pvc
    return record


def load_all() -> dict[tuple[str, str], Record]:
    """Every PVC's record, in one list."""
    found = {}
    for cm in kubernetes.list_config_maps(_namespace(), SELECTOR):
        record = _decode(cm)
        if record.namespace and record.pvc:
            found[(record.namespace, record.pvc)] = record
    return found


def update(namespace: str, pvc: str, change: Callable[[Record], None]) -> Record:
    """Apply `change` to the PVC's record and write it with a compare-and-swap, retried on a
    concurrent write (the change is applied again to what the other writer left)."""
    name = name_of(namespace, pvc)
    for _attempt in range(WRITE_ATTEMPTS):
        cm = kubernetes.find_config_map(_namespace(), name)
        record = _decode(cm) if cm is not None else Record(namespace, pvc)
        record.namespace, record.pvc = namespace, pvc
        change(record)
        try:
            if cm is None:
                kubernetes.create_config_map(_namespace(), _body(record))
            else:
                kubernetes.replace_config_map(_namespace(), name, _body(record, cm.resource_version))
            return record
        except Conflict:
            continue  # another writer went first: read again and re-apply
    raise UpstreamError("kubernetes", f"ConfigMap {_namespace()}/{name} kept changing under Soteria; "
                                      f"gave up after {WRITE_ATTEMPTS} attempts")


def now() -> datetime:
    return datetime.now(timezone.utc)


def when(value: str | None) -> datetime | None:
    return parse_time(value) if value else None
