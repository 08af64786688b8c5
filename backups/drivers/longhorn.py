"""The Longhorn driver: PVC -> PV -> `spec.csi.volumeHandle` -> Longhorn volume.

Backups are a Snapshot CR named soteria-backup-<ns>-<pvc>-<UTC yyyymmdd-HHMMSS>
(at most 63 characters: a longer <ns>-<pvc> keeps its start and gets a hash, the time
stays at the end) plus `snapshotBackup`; backups are found by listing backup volumes and matching
`volumeName` (never by computing a backup volume id). The inventory reads
Longhorn's volumes, backups and backup volumes from their CRDs (three Kubernetes
lists whatever the number of volumes, none on the manager: longhorn_crd.py).

Once the backup is requested, a short Job in the PVC's namespace records the claim's
manifest (manifest_jobs.py): read from the live claim right after the snapshot, leaving out
files changed since the snapshot's time minus the clock margin (docs/drills.md).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone

from django.conf import settings
from django.core.cache import cache

from soteria_site.core import events, names, workloads
from soteria_site.core.errors import Conflict, NotFound, SoteriaError, UnsupportedDriver, UpstreamError, UpstreamTimeout
from soteria_site.core.kubernetes import LONGHORN_CSI_DRIVER, Pvc

from ..clients import longhorn, longhorn_crd
from ..clients.longhorn import BackupStatus, BackupVolume, Volume
from ..types import BackupFacts, BackupRecord, BackupResult, Claim, PlannedCall, Probe, RestorePlan, RestoreProgress
from . import failure_memory as failure_ledger
from . import job_bodies, longhorn_features, longhorn_restore, longhorn_snapshots, manifest_jobs
from .base import VolumeView, unanswered
from .longhorn_snapshots import snapshot_name, snapshot_time

log = logging.getLogger(__name__)
NAME = "longhorn"
# Running: a new backup (""), Pending, InProgress. Final: Completed, Error, Unknown (and
# Deleting, 1.8+). Longhorn's backup controller treats Unknown as final (docs/longhorn.md).
IN_PROGRESS_STATES = frozenset({"", "Pending", "InProgress"})
FAILED_STATES = frozenset({"Error", "Unknown"})
# A backup pulled from the backup store keeps state "" until Longhorn syncs it, which may
# never happen for an old one: "" counts as running only this long after it started (or
# was first seen), two default backupstore poll intervals.
NEW_STATE_LIMIT = timedelta(minutes=10)
_EPOCH = datetime.min.replace(tzinfo=timezone.utc)

def volume_of(claim: Claim) -> str | None:
    """The Longhorn volume behind a bound claim, or None if it is not a Longhorn volume."""
    if claim.pv is None or claim.pv.csi_driver != LONGHORN_CSI_DRIVER:
        return None
    return claim.pv.volume_handle or None


def _first_seen(volume: str, backup: BackupStatus, now: datetime) -> datetime:
    """When a running backup started: from Soteria's snapshot name, else when first seen running."""
    started = snapshot_time(backup.snapshot)
    if started:
        return started
    key = f"soteria:longhorn:running:{volume}:{backup.name or backup.snapshot}"
    return cache.get_or_set(key, now, timeout=14 * 24 * 3600)


def running_backups(volume: Volume, now: datetime) -> list[tuple[BackupStatus, datetime]]:
    """The volume's running backups with when each started (or was first seen): Pending and
    InProgress, and "" for at most NEW_STATE_LIMIT."""
    running = []
    for b in volume.backups:
        if b.state not in IN_PROGRESS_STATES:
            continue
        started = _first_seen(volume.name, b, now)
        if b.state == "" and now - started >= NEW_STATE_LIMIT:
            continue
        running.append((b, started))
    return running


def failure_text(backup: BackupStatus) -> str:
    if backup.error:
        return backup.error
    if backup.state == "Unknown":
        return "Longhorn lost track of this backup (state Unknown)"
    return f"backup ended in state {backup.state}"


def backup_facts(volume: Volume, backup_volume: BackupVolume | None, now: datetime) -> BackupFacts:
    if (backup_volume is not None and volume.backup_target and backup_volume.backup_target
            and backup_volume.backup_target != volume.backup_target):
        backup_volume = None  # another backup target's copy of this volume's backups
    completed = [b for b in volume.backups if b.state == "Completed"]
    times = [t for t in (volume.last_backup_at, backup_volume.last_backup_at if backup_volume else None) if t]
    times += [t for t in (snapshot_time(b.snapshot) for b in completed) if t]
    if volume.completed_backups is not None:  # read for the inventory: Completed backups folded
        times += [volume.last_completed_at] if volume.last_completed_at else []
    last_success = max(times) if times else None
    # Failed backups (Error, Unknown), dated by Soteria's snapshot name, else when Soteria
    # first saw them (remembered by the inventory refresh), else undated.
    ledger = failure_ledger.current()
    known = ledger.known(volume.name) if ledger else {}
    failures: list[failure_ledger.Failure] = []
    for b in volume.backups:
        if b.state not in FAILED_STATES:
            continue
        key = b.name or b.snapshot
        when = snapshot_time(b.snapshot)
        if when is None and key in known:
            when = known[key].first_seen
        elif when is None and ledger is not None and ledger.dating:
            when = now  # new since the last refresh: first seen now
        failures.append(failure_ledger.Failure(key, failure_text(b), when))
    listed = {f.backup for f in failures}

    # A failure counts as the newest outcome when it is dated after the last success, or,
    # undated, when there was never a success.
    def counts(f: failure_ledger.Failure) -> bool:
        if f.first_seen is None:
            return last_success is None
        return last_success is None or f.first_seen > last_success

    # Failures Longhorn no longer lists (failed-backup-ttl) stay while they count.
    vanished = [f for name, f in known.items() if name not in listed and counts(f)]
    if ledger is not None:
        ledger.keep(volume.name, failures + vanished)
    newer = [f for f in failures + vanished if counts(f)]
    newest_failure = max(newer, key=lambda f: f.first_seen or _EPOCH) if newer else None
    running = tuple((b.name or b.snapshot, started) for b, started in running_backups(volume, now))
    return BackupFacts(
        last_success_at=last_success,
        success_count=len(completed) + (volume.completed_backups or 0),
        last_failure_is_newest=newest_failure is not None,
        last_failure_error=newest_failure.error if newest_failure else "",
        in_progress=running,
    )


def _latest_backup_volumes(backup_volumes: list[BackupVolume],
                           targets: dict[str, str] | None = None) -> dict[str, BackupVolume]:
    """Volume name -> its backup volume. With several backup targets (1.8+) a volume has a
    backup volume on each: the one on the volume's own target (`targets`: volume ->
    `backupTargetName`) wins. Upgraded 1.8 clusters may keep an old BV named after the
    volume beside a new suffixed one: among the rest, the one with the newest backup wins."""
    targets = targets or {}

    def rank(bv: BackupVolume) -> tuple:
        own = targets.get(bv.volume_name, "")
        return (bool(own) and bv.backup_target == own, bv.last_backup_at or _EPOCH)

    latest: dict[str, BackupVolume] = {}
    for bv in sorted(backup_volumes, key=rank):
        latest[bv.volume_name] = bv
    return latest


def _backup_volume_of(volume: Volume | None, name: str) -> BackupVolume | None:
    """The backup volume of one volume, on the volume's own backup target."""
    targets = {name: volume.backup_target} if volume is not None and volume.backup_target else None
    return _latest_backup_volumes(longhorn.list_backup_volumes(), targets).get(name)


class LonghornDriver:
    name = NAME

    def supports(self, claim: Claim) -> bool:
        """A bound claim on a Longhorn PV; an unbound one of a Longhorn storage class."""
        if claim.pv is not None:
            return volume_of(claim) is not None
        return claim.storage_class is not None and claim.storage_class.provisioner == LONGHORN_CSI_DRIVER

    def describe(self, claims: list[Claim], now: datetime) -> dict[tuple[str, str], VolumeView]:
        bound = [c for c in claims if c.bound]
        if not bound:
            return {}
        # From Longhorn's CRDs through the Kubernetes API: the manager's GET /v1/volumes costs
        # volumes x backups on its side (docs/longhorn.md, "Reading the inventory from CRDs").
        # The backup volumes are listed while the volumes and backups are; Completed backups are
        # counted as they are read, not kept (at 50 a volume they are most of the list).
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="soteria-inventory") as pool:
            backup_volumes = pool.submit(longhorn_crd.list_backup_volumes)
            volumes = {v.name: v for v in longhorn_crd.list_volumes(completed_time=snapshot_time)}
            by_volume = _latest_backup_volumes(backup_volumes.result(),
                                               {v.name: v.backup_target for v in volumes.values()})
        views = {}
        for claim in bound:
            name = volume_of(claim)
            if name is None:
                driver = claim.pv.csi_driver or "in-tree volume"
                views[claim.key] = VolumeView(volume=claim.pv.name, supported=False,
                                              detail=f"PV {claim.pv.name} is not a Longhorn volume ({driver})")
                continue
            volume = volumes.get(name)
            if volume is None:
                views[claim.key] = VolumeView(volume=name, supported=True, missing=True, driver=NAME,
                                              detail=f"Longhorn has no volume {name}")
                continue
            views[claim.key] = VolumeView(volume=name, supported=True, driver=NAME,
                                          facts=backup_facts(volume, by_volume.get(name), now))
        return views

    def _require_volume(self, claim: Claim) -> str:
        if not claim.bound:
            raise Conflict(f"PVC {claim.pvc.namespace}/{claim.pvc.name} is not bound to a volume "
                           f"(phase {claim.pvc.phase})", code="pvc_not_bound")
        name = volume_of(claim)
        if name is None:
            raise UnsupportedDriver(
                f"PVC {claim.pvc.namespace}/{claim.pvc.name} is not a Longhorn volume "
                f"(PV {claim.pv.name} uses {claim.pv.csi_driver or 'an in-tree volume plugin'}); "
                f"the configured driver is {NAME}", driver=NAME)
        return name

    def list_backups(self, claim: Claim) -> tuple[str, list[BackupRecord]]:
        """Backups from the backup volume, plus the volume's running ones not synced there yet."""
        name = self._require_volume(claim)
        volume = longhorn.get_volume(name)
        records = self._records(name, _backup_volume_of(volume, name))
        known = {r.name for r in records}
        running = [BackupRecord(name=b.name, snapshot=b.snapshot, url=b.url, state=b.state or "Pending",
                                progress=b.progress, created=snapshot_time(b.snapshot), size=b.size, error=b.error,
                                volume=name)
                   for b in (volume.backups if volume else ()) if b.name not in known and b.state != "Completed"]
        return name, running + records

    @staticmethod
    def _records(volume: str, backup_volume: BackupVolume | None) -> list[BackupRecord]:
        """A volume's backups, newest first, found through the backup volume whose volumeName matches."""
        if backup_volume is None:
            return []
        return [longhorn_restore.to_record(b, volume) for b in reversed(longhorn.list_backups(backup_volume.name))]

    def refuse_foreign_backup_url(self, claim: Claim, backup_url: str) -> None:
        name = volume_of(claim)
        if name is not None:  # else plan_restore says why the claim cannot be restored
            longhorn_restore.refuse_foreign_url(backup_url, name, claim)

    def plan_restore(self, claim: Claim, snapshot: str, backup_url: str, target_namespace: str,
                     target_pvc: str) -> RestorePlan:
        name = self._require_volume(claim)
        if backup_url:
            longhorn_restore.refuse_foreign_url(backup_url, name, claim)
        records = self._records(name, _backup_volume_of(longhorn.get_volume(name), name))
        if backup_url:
            backup = longhorn_restore.find_by_url(backup_url, name, records)
        else:
            backup = longhorn_restore.choose_backup(records, snapshot, claim)
        return longhorn_restore.plan(claim, name, backup, target_namespace, target_pvc)

    def delete_backups(self, claim: Claim, names: list[str]) -> None:
        name = self._require_volume(claim)
        backup_volume = _backup_volume_of(longhorn.get_volume(name), name)
        if backup_volume is None:
            raise NotFound(f"Longhorn has no backup volume for {name}")
        for backup in names:
            longhorn.delete_backup(backup_volume.name, backup)

    def probe(self, timeout: float) -> Probe:
        """Ping the manager. A backup mode its version cannot honour is a hint, not a failure:
        backups then answer 422 backup_mode_unsupported."""
        longhorn.ping(timeout=timeout)
        try:
            problem = longhorn_features.backup_mode_problem()
        except SoteriaError as exc:
            return Probe(detail=f"version unknown: {exc.detail}", hints={"longhorn backup mode": ("", "")})
        detail = f"Longhorn {longhorn_features.version_text()}" if settings.SOTERIA_LONGHORN_BACKUP_MODE == "full" \
            else ""
        return Probe(detail=detail,
                     hints={"longhorn backup mode": ("backup_mode_unsupported" if problem else "", problem)})

    def restore_progress(self, pvcs: list[Pvc]) -> dict[tuple[str, str], RestoreProgress]:
        """Longhorn's restore progress of each claim's volume, in one call whatever their number."""
        volumes = {v.name: v for v in longhorn.list_volumes()} if pvcs else {}
        progress = {}
        for pvc in pvcs:
            volume = volumes.get(pvc.volume_name or "")
            if volume is None:
                found = RestoreProgress("volume missing", None, f"Longhorn has no volume {pvc.volume_name}")
            elif volume.restore_error or volume.robustness == "faulted":
                found = RestoreProgress("failed", volume.restore_progress, volume.restore_error or "volume faulted")
            elif volume.restore_required:
                found = RestoreProgress("restoring", volume.restore_progress)
            else:
                found = RestoreProgress("done", 100)
            progress[(pvc.namespace, pvc.name)] = found
        return progress

    def restore(self, plan: RestorePlan, claim: Claim, requested_by: str) -> RestorePlan:
        own = self._require_volume(claim)
        source = longhorn.get_volume(own)
        if source is None:
            raise NotFound(f"Longhorn has no volume {own} for PVC {plan.namespace}/{plan.pvc}", code="volume_missing")
        return longhorn_restore.execute(plan, source, claim.pv.fs_type or "ext4", requested_by)

    def backup(self, claim: Claim, labels: dict[str, str], requested_by: str, dry_run: bool,
               now: datetime) -> BackupResult:
        name = self._require_volume(claim)
        namespace, pvc = claim.key
        snapshot = snapshot_name(namespace, pvc, now)
        mode = settings.SOTERIA_LONGHORN_BACKUP_MODE
        manifest_job = names.job_name(manifest_jobs.OPERATION, pvc, now)
        plan = (
            PlannedCall("snapshotCRCreate", name, {"name": snapshot}),
            PlannedCall("snapshotBackup", name, {"name": snapshot, "labels": labels, "backupMode": mode}),
            PlannedCall("kubernetes.createJob", f"{namespace}/{manifest_job}",
                        {"manifest": snapshot, **manifest_jobs.planned(manifest_jobs.since(now))}),
        )
        volume = longhorn.get_volume(name)
        if volume is None:
            raise NotFound(f"Longhorn has no volume {name} for PVC {namespace}/{pvc}", code="volume_missing")
        longhorn_features.require_backup_mode(mode)
        running = [b for b, _ in running_backups(volume, now)]
        if running:
            label = running[0].name or running[0].snapshot
            raise Conflict(f"a backup of PVC {namespace}/{pvc} is already in progress: {label}",
                           code="backup_in_progress", running=label)
        if any(b.snapshot == snapshot for b in volume.backups):
            raise Conflict(f"a backup named {snapshot} already exists; retry in a second",
                           code="backup_in_progress", running=snapshot)
        result = BackupResult(driver=NAME, namespace=namespace, pvc=pvc, volume=name, backup=snapshot,
                              requested_by=requested_by, dry_run=dry_run, labels=labels, plan=plan)
        if dry_run:
            return result
        # Soteria's earlier snapshots of this volume whose backups are over: one list call.
        longhorn_snapshots.prune_volume(volume, now)
        try:
            longhorn.create_snapshot(name, snapshot)
        except UpstreamError as exc:
            if "already exists" in exc.detail:
                raise Conflict(f"snapshot {snapshot} already exists: a backup of PVC {namespace}/{pvc} "
                               "was requested in the same second", code="backup_in_progress",
                               running=snapshot) from None
            raise
        longhorn_snapshots.remember(name, snapshot, now)
        try:
            self._wait_snapshot_ready(name, snapshot)
        except SoteriaError as exc:
            problem = longhorn_snapshots.discard(name, snapshot)
            exc.detail += (f"; Soteria could not delete its snapshot {snapshot}: {problem}" if problem else
                           f"; Soteria deleted its snapshot {snapshot}")
            raise
        try:
            longhorn.backup_snapshot(name, snapshot, labels, mode)
        except SoteriaError as exc:
            if not unanswered(exc):  # refused: no backup will ever read this snapshot
                problem = longhorn_snapshots.discard(name, snapshot)
                exc.detail += (f"; Soteria could not delete its snapshot {snapshot}: {problem}" if problem else
                               f"; Soteria deleted its snapshot {snapshot}")
            raise
        self._start_manifest(claim, manifest_job, snapshot, requested_by, now)
        return result

    @staticmethod
    def _start_manifest(claim: Claim, job: str, snapshot: str, requested_by: str, now: datetime) -> None:
        """The Job that records the claim's manifest for this backup. The backup is requested
        already, so a Job that cannot be created is told (log, Warning Event), never fatal."""
        namespace, pvc = claim.key
        try:
            body = manifest_jobs.job(job, namespace, pvc, NAME, snapshot, manifest_jobs.since(now), requested_by,
                                     job_bodies.node_for(claim))
            workloads.create_job(namespace, body)
        except SoteriaError as exc:
            log.warning("backup %s of %s/%s: its manifest Job %s could not be created: %s", snapshot, namespace,
                        pvc, job, exc.detail)
            events.emit_on_pvc(claim.pvc, "ManifestNotStarted",
                               f"Backup {snapshot} goes on without a manifest: Soteria could not create Job {job}: "
                               f"{exc.detail}", warning=True)

    @staticmethod
    def _wait_snapshot_ready(volume: str, snapshot: str) -> None:
        """Until `readyToUse`. While Longhorn attaches a detached volume for the snapshot, the
        Snapshot CR carries a transient error ("... is not running. Waiting for the volume to
        be attached"): errors are only reported if the snapshot is still not ready at the
        deadline (SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS)."""
        timeout = settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS
        deadline = time.monotonic() + timeout
        delay, last_error = 0.1, ""
        while True:
            try:
                state = longhorn.get_snapshot(volume, snapshot)
            except (UpstreamTimeout, NotFound) as exc:  # slow, or the new CR not visible yet
                last_error = exc.detail
            else:
                if state.ready:
                    return
                last_error = state.error or last_error
            if time.monotonic() >= deadline:
                why = f": {last_error}" if last_error else ""
                raise UpstreamTimeout(NAME, f"snapshot {snapshot} of volume {volume} was not ready within "
                                            f"{timeout}s (SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS); Longhorn "
                                            f"said{why or ' nothing'}",
                                      longhorn_error=last_error)
            time.sleep(delay)
            delay = min(delay * 2, 2.0)


DRIVER = LonghornDriver()
