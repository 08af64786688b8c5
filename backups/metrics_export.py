"""GET /metrics: counters summed over every process, and freshness from the cached inventory.

The freshness gauges are read from the cached inventory in the database (no
upstream call at scrape time); counters come from the Prometheus multiprocess
directory shared by the gunicorn workers and the queue worker.

The per-PVC part is rendered once per change of the cached rows in each process and kept
as text: a scrape reads the rows' version (two indexed one-value queries), renders the
live counters and appends that text. Text-format families may come in any order, and
the two parts share no family name, so the answer is what one registry would give.
"""

from __future__ import annotations

import threading

from django.conf import settings
from django.http import HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.multiprocess import MultiProcessCollector

from .services import inventory_cache

PVC_LABELS = ["namespace", "pvc", "volume", "driver"]


class SnapshotCollector:
    """Per-PVC freshness gauges from the last inventory snapshot."""

    def collect(self):
        snap = inventory_cache.latest()
        rows = snap.rows if snap else []
        age = GaugeMetricFamily("pvc_backup_age_hours", "Hours since the newest successful backup of the PVC.",
                                labels=PVC_LABELS)
        health = GaugeMetricFamily("pvc_backup_health", "1 when the newest successful backup is within "
                                   "SOTERIA_BACKUP_MAX_AGE_HOURS, else 0.", labels=PVC_LABELS)
        last = GaugeMetricFamily("pvc_backup_last_success_timestamp_seconds",
                                 "Unix time of the newest successful backup of the PVC.", labels=PVC_LABELS)
        count = GaugeMetricFamily("pvc_backup_count", "Successful backups of the PVC.", labels=PVC_LABELS)
        interval = GaugeMetricFamily("pvc_backup_expected_interval_seconds",
                                     "The backup interval of the PVC's enabled policy.", labels=PVC_LABELS)
        stuck = GaugeMetricFamily("pvc_backup_stuck", "1 when a backup of the PVC has been running far longer "
                                  "than expected (SOTERIA_BACKUP_STUCK_HOURS).", labels=PVC_LABELS)
        verified = GaugeMetricFamily("pvc_restore_verified_timestamp_seconds",
                                     "Unix time of the PVC's last passed restore drill.", labels=PVC_LABELS)
        verify_failed = GaugeMetricFamily("pvc_restore_verify_failed", "1 when the PVC's newest restore drill "
                                          "verdict is failed, else 0 (passed or unverified; a drill that ended in "
                                          "error is no verdict); absent before its first verdict.", labels=PVC_LABELS)
        without = GaugeMetricFamily("soteria_pvcs_without_policy", "PVCs no enabled policy backs up.",
                                    labels=["namespace"])
        running = GaugeMetricFamily("soteria_backups_in_progress", "Backups running now, and those stuck.",
                                    labels=["state"])
        refreshed = GaugeMetricFamily("soteria_inventory_refresh_timestamp_seconds",
                                      "Unix time of the last successful inventory refresh.")
        duration = GaugeMetricFamily("soteria_inventory_refresh_duration_seconds",
                                     "How long the last successful inventory refresh took.")
        uncovered: dict[str, int] = {}
        in_progress = stuck_total = 0
        for row in rows:
            labels = [row["namespace"], row["pvc"], row["volume"], row["driver"]]
            if row["age_hours"] is not None:
                age.add_metric(labels, row["age_hours"])
                last.add_metric(labels, row["last_success"])
            health.add_metric(labels, 1 if row["healthy"] else 0)
            count.add_metric(labels, row["count"])
            is_stuck = row["reason"] == "backup stuck"
            stuck.add_metric(labels, 1 if is_stuck else 0)
            stuck_total += is_stuck
            in_progress += row["in_progress"]
            if row.get("verified_at") is not None:  # rows cached before drills existed lack it
                verified.add_metric(labels, row["verified_at"])
            # The newest verdict: a drill that ended in `error` says nothing about the backup, so it
            # neither raises nor clears a failure.
            verdict = row.get("verdict", row.get("verify_result"))
            if verdict:
                verify_failed.add_metric(labels, 1 if verdict == "failed" else 0)
            if row["interval"] is not None:
                interval.add_metric(labels, row["interval"])
            elif row["policies_known"]:
                uncovered[row["namespace"]] = uncovered.get(row["namespace"], 0) + 1
            else:
                uncovered.setdefault(row["namespace"], 0)
        for namespace in sorted({r["namespace"] for r in rows}):
            without.add_metric([namespace], uncovered.get(namespace, 0))
        running.add_metric(["running"], in_progress)
        running.add_metric(["stuck"], stuck_total)
        if snap:
            refreshed.add_metric([], snap.generated_at.timestamp())
            duration.add_metric([], snap.duration_seconds)
        yield from (age, health, last, count, interval, stuck, verified, verify_failed, without, running, refreshed,
                    duration)


class RenderedRows:
    """The per-PVC families as text, rendered again only when the cached rows changed."""

    def __init__(self):
        self._lock = threading.Lock()
        self._version: object = object()  # equal to no version: the first call renders
        self._text = b""

    def text(self) -> bytes:
        current = inventory_cache.version()
        with self._lock:
            # None: no refresh recorded yet (none ran, or it ran before changes were recorded).
            if current is None or current != self._version:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(SnapshotCollector())
                self._text, self._version = generate_latest(registry), current
            return self._text


ROWS = RenderedRows()


@never_cache
@require_safe
def metrics_view(request):
    counters = b""
    if settings.PROMETHEUS_MULTIPROC_DIR:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        counters = generate_latest(registry)
    return HttpResponse(counters + ROWS.text(), content_type=CONTENT_TYPE_LATEST)
