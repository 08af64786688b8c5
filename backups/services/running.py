"""What is running now, for the console's Activity page: backups and restores with their
progress and when they started.

Restores: the claims Soteria restored whose data is still coming in (one list of labelled
claims and the driver's progress, whatever their number). Backups: the PVCs the stored inventory
shows with a backup in progress (no build), each asked for its backups, at most
`BACKUP_LOOKUPS` of them, so the page costs a bounded number of upstream calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from soteria_site.core import kubernetes
from soteria_site.core.errors import SoteriaError

from .. import drivers
from ..types import DRILL_LABEL, RESTORED_FROM
from . import backup, inventory_cache

BACKUP_LOOKUPS = 20
RUNNING_BACKUP_STATES = frozenset({"", "new", "Pending", "InProgress"})


@dataclass(frozen=True)
class Running:
    kind: str  # backup | restore
    namespace: str
    pvc: str
    name: str  # the backup's name (for a restore: the backup restored)
    source: str  # a restore's `namespace/pvc` ("" for a backup, or when the caller may not view it)
    state: str
    progress: int | None
    started: datetime | None


@dataclass(frozen=True)
class RunningNow:
    operations: list[Running]
    unchecked: int  # PVCs shown in progress that were not asked (over BACKUP_LOOKUPS)
    problems: list[str]  # what could not be read, e.g. "restores: Longhorn unreachable"


def running(visible: frozenset[str] | None = None) -> RunningNow:
    ops, problems = [], []
    try:
        ops += _restores(visible)
    except SoteriaError as exc:
        problems.append(f"restores: {exc.detail}")
    backups, unchecked, backup_problems = _backups(visible)
    return RunningNow(ops + backups, unchecked, problems + backup_problems)


def _restores(visible: frozenset[str] | None) -> list[Running]:
    restored = [p for p in kubernetes.list_pvcs_labelled(f"{RESTORED_FROM},!{DRILL_LABEL}")
                if visible is None or p.namespace in visible]
    if not restored:
        return []
    progress = drivers.current().restore_progress(restored)
    out = []
    for pvc in restored:
        p = progress[(pvc.namespace, pvc.name)]
        if p.state != "restoring":
            continue
        source = pvc.annotations.get("soteria.io/source", "")
        if visible is not None and source.partition("/")[0] not in visible:
            source = ""
        out.append(Running("restore", pvc.namespace, pvc.name, pvc.labels.get("soteria.io/backup", ""), source,
                           p.state, p.progress, pvc.created))
    return sorted(out, key=lambda r: (r.namespace, r.pvc))


def _backups(visible: frozenset[str] | None) -> tuple[list[Running], int, list[str]]:
    cached = inventory_cache.latest()
    if cached is None:
        return [], 0, []
    busy = sorted((row["namespace"], row["pvc"]) for row in cached.rows
                  if row.get("in_progress") and (visible is None or row["namespace"] in visible))
    out, problems = [], []
    for namespace, pvc in busy[:BACKUP_LOOKUPS]:
        try:
            found = backup.list_backups(namespace, pvc)
        except SoteriaError as exc:
            problems.append(f"{namespace}/{pvc}: {exc.detail}")
            continue
        out += [Running("backup", namespace, pvc, b.name, "", b.state or "new", b.progress, b.created)
                for b in found.backups if b.state in RUNNING_BACKUP_STATES]
    return out, max(len(busy) - BACKUP_LOOKUPS, 0), problems
