"""The backups app's domain types: plain dataclasses shared by drivers, services and the API
(a PVC with its PV and class is a `Claim`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple

from soteria_site.core.kubernetes import Pv, Pvc, StorageClass

# Stable health reasons (docs/inventory.md), in order of precedence.
NOT_BOUND = "not bound"
UNSUPPORTED_DRIVER = "unsupported driver"
VOLUME_MISSING = "volume missing in Longhorn"
BACKUP_STUCK = "backup stuck"
LAST_BACKUP_FAILED = "last backup failed"
BACKUP_IN_PROGRESS = "backup in progress"
FRESH = "fresh"
STALE = "stale"
NEVER_BACKED_UP = "never backed up"
HEALTH_REASONS = (NOT_BOUND, UNSUPPORTED_DRIVER, VOLUME_MISSING, BACKUP_STUCK, LAST_BACKUP_FAILED,
                  BACKUP_IN_PROGRESS, FRESH, STALE, NEVER_BACKED_UP)
NO_DRIVER = "none"
# The label every claim Soteria restored carries (value: `<namespace>.<pvc>` of the source).
RESTORED_FROM = "soteria.io/restored-from"
# What a restore drill creates (scratch claim, PV, Jobs) carries this label (value: the drill's id).
DRILL_LABEL = "soteria.io/drill"


@dataclass(frozen=True)
class Claim:
    pvc: Pvc
    pv: Pv | None
    storage_class: StorageClass | None
    # The node of a running pod that mounts it, when already looked up for a whole batch ("":
    # none); None: not looked up (a Job that must run beside it lists the pods itself).
    mounted_on: str | None = None

    @property
    def key(self) -> tuple[str, str]:
        return (self.pvc.namespace, self.pvc.name)

    @property
    def bound(self) -> bool:
        return self.pvc.phase == "Bound" and self.pv is not None

    @property
    def capacity(self) -> str:
        return self.pvc.capacity or self.pvc.requested or ""


@dataclass(frozen=True)
class BackupFacts:
    """What a driver knows about one PVC's backups, cheaply (no per-PVC calls)."""

    last_success_at: datetime | None = None
    success_count: int = 0
    # The newest failure and whether it is newer than the last success.
    last_failure_is_newest: bool = False
    last_failure_error: str = ""
    # Backups running now: (name, started or first seen).
    in_progress: tuple[tuple[str, datetime | None], ...] = ()


@dataclass(frozen=True)
class InventoryItem:
    namespace: str
    pvc: str
    volume: str
    storage_class: str
    capacity: str
    driver: str
    last_backup_at: datetime | None
    last_backup_age_hours: float | None
    backup_count: int
    healthy: bool
    health_reason: str
    # Beyond the contract's row: detail for the console and metrics.
    detail: str = ""
    in_progress: tuple[str, ...] = ()
    # Restore drills (docs/drills.md): the last passed drill, and the newest finished drill's result.
    last_verified_at: datetime | None = None
    verify_result: str = ""
    verify_reason: str = ""
    verify_verdict: str = ""  # the newest passed/failed/unverified (an error drill is no verdict)


class NamespaceGroup(NamedTuple):
    name: str
    pvcs: list[InventoryItem]


@dataclass(frozen=True)
class Inventory:
    generated_at: datetime
    items: list[InventoryItem]

    def by_namespace(self) -> list[NamespaceGroup]:
        """The items grouped by namespace, both sorted by name."""
        groups: dict[str, list[InventoryItem]] = {}
        for item in sorted(self.items, key=lambda i: (i.namespace, i.pvc)):
            groups.setdefault(item.namespace, []).append(item)
        return [NamespaceGroup(name, items) for name, items in groups.items()]


@dataclass(frozen=True)
class BackupSummary:
    """What one backup run added, in restic's words (`backup --json`'s summary line)."""

    snapshot_id: str  # as restic printed it: short in 0.14, full in 0.16
    files_new: int
    files_changed: int
    files_unmodified: int
    bytes_added: int  # restic's data_added: new data after deduplication, before compression
    files_processed: int
    bytes_processed: int


@dataclass(frozen=True)
class BackupRecord:
    name: str
    snapshot: str
    url: str
    state: str
    progress: int
    created: datetime | None
    size: str
    labels: dict[str, str] = field(default_factory=dict)
    backup_mode: str = ""
    error: str = ""
    volume: str = ""
    # Size of the volume when it was backed up (bytes; "" when the driver does not know).
    volume_size: str = ""
    # What the run that took it added (None when the driver cannot tell, or no longer can).
    summary: BackupSummary | None = None

    @property
    def completed(self) -> bool:
        return self.state == "Completed"


@dataclass(frozen=True)
class PlannedCall:
    """One upstream call a mutation makes (or, in a dry run, would make)."""

    call: str
    target: str
    args: dict = field(default_factory=dict)


@dataclass(frozen=True)
class BackupResult:
    driver: str
    namespace: str
    pvc: str
    volume: str
    backup: str
    requested_by: str
    dry_run: bool
    labels: dict[str, str] = field(default_factory=dict)
    plan: tuple[PlannedCall, ...] = ()


@dataclass(frozen=True)
class RestorePlan:
    """Everything a restore will create, decided before anything is created."""

    driver: str
    namespace: str
    pvc: str
    source_volume: str
    backup: BackupRecord
    target_namespace: str
    target_pvc: str
    volume: str
    pv: str
    storage_class: str
    access_modes: tuple[str, ...]
    size: str
    calls: tuple[PlannedCall, ...] = ()
    # Sizes as Kubernetes quantities: the backup's volume (what a restore gets), the source
    # PVC's now, the size the restored volume is expanded to ("" when not expanded), and a
    # note when the restored claim ends up smaller than its source.
    backup_size: str = ""
    source_size: str = ""
    expand_to: str = ""
    size_note: str = ""
    # The restic driver's restore Job ("" for Longhorn).
    job: str = ""
    # Labels added to everything the restore creates (a restore drill marks its scratch objects).
    extra_labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RestoreResult:
    plan: RestorePlan
    requested_by: str
    dry_run: bool


@dataclass(frozen=True)
class RestoreProgress:
    """How far a driver has got restoring one claim's data."""

    state: str  # restoring | done | failed | volume missing
    progress: int | None
    detail: str = ""


@dataclass(frozen=True)
class RestoreStatus:
    """A claim Soteria restored, as GET /v1/restores shows it."""

    namespace: str
    pvc: str
    volume: str
    source: str
    backup: str
    state: str  # restoring | done | failed | volume missing
    progress: int | None
    detail: str = ""


@dataclass(frozen=True)
class Probe:
    """What a driver's readiness probe learned: a detail for the log, and hints (name ->
    (error code, text), code "" when fine) worth logging when they change, without failing
    readiness."""

    detail: str = ""
    hints: dict[str, tuple[str, str]] = field(default_factory=dict)


@dataclass(frozen=True)
class PvcOutcome:
    pvc: str
    status: str  # success | failed | skipped | planned
    volume: str = ""
    backup: str = ""
    error: str = ""
    detail: str = ""
    plan: tuple = ()


@dataclass(frozen=True)
class NamespaceBackupResult:
    driver: str
    namespace: str
    requested_by: str
    dry_run: bool
    results: list[PvcOutcome] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        counts = {"total": len(self.results), "success": 0, "failed": 0, "skipped": 0, "planned": 0}
        for outcome in self.results:
            counts[outcome.status] += 1
        return counts


@dataclass(frozen=True)
class PvcBackups:
    namespace: str
    pvc: str
    volume: str
    backups: list


@dataclass(frozen=True)
class RestoreOutcome:
    pvc: str
    target_pvc: str
    status: str  # planned | queued | restored | skipped | failed (restored: by the worker, never in an answer)
    error: str = ""
    detail: str = ""
    plan: RestorePlan | None = None


@dataclass(frozen=True)
class NamespaceRestoreResult:
    driver: str
    namespace: str
    target_namespace: str
    target_prefix: str
    requested_by: str
    dry_run: bool
    results: list[RestoreOutcome] = field(default_factory=list)

    @property
    def totals(self) -> dict[str, int]:
        counts = {"total": len(self.results), "planned": 0, "queued": 0, "restored": 0, "skipped": 0, "failed": 0}
        for outcome in self.results:
            counts[outcome.status] += 1
        return counts
