"""Restore drill records as the drill service writes them, for tests of what reads them."""

from __future__ import annotations

from datetime import datetime, timedelta

from backups.services import drill_records
from soteria_site.core.timeparse import format_time


def record_drill(namespace: str, pvc: str, result: str, started: datetime, *, minutes: float = 3,
                 reason: str = "", differences: tuple[str, ...] = (), backup: str = "backup-1",
                 drill_id: str = "") -> dict:
    """Store a drill of the PVC in its verification record (a running drill has no end)."""
    drill = {"id": drill_id or f"{started:%Y%m%d-%H%M%S}-{result[:6]}", "namespace": namespace, "pvc": pvc,
             "driver": "longhorn", "volume": f"pvc-{namespace}-{pvc}", "backup": backup,
             "started_at": format_time(started),
             "finished_at": None if result == "running" else format_time(started + timedelta(minutes=minutes)),
             "result": result, "reason": reason or f"drill {result}", "differences": list(differences),
             "requested_by": "tester"}
    drill_records.update(namespace, pvc, lambda r: r.put_drill(drill))
    return drill
