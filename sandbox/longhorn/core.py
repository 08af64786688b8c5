"""The emulator object: configuration, file layout, and the controller loop.

Asynchronous work (volume attach/detach, restores, backups, deletions) is
driven by one background thread, like Longhorn's controllers: every tick it
advances the volumes and backups in `active_*` sets. Progress numbers are
derived from wall-clock start times, so only state transitions are written to
the store, and a restarted emulator picks up where it left off.
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from pathlib import Path

from . import backups, snapshots, util, volumes
from .constants import BACKUP_TARGET, LONGHORN_VERSIONS
from .faults import Faults
from .store import Store

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05

# Behaviour switches the control API may change (kept in the store, so they survive a restart).
# Longhorn settings: snapshot-max-count (default 250), failed-backup-ttl (minutes, default 1440,
# 0 = never), auto-cleanup-snapshot-after-on-demand-backup-completed (1.9, default false).
# Sandbox knobs: how long a snapshot of a detached volume waits for the attachment, how often
# the failed-backup clean-up runs (Longhorn: every backupstore poll, 300 s), and the modelled
# cost of each (volume x backup) pair the manager's volume list scans, and a fixed latency added
# to every /v1 call (a manager reached over a network, answering after `call_delay_seconds`).
DEFAULT_CONFIG = {
    "snapshot_max_count": 250,
    "failed_backup_ttl_minutes": 1440.0,
    "auto_cleanup_snapshot_after_backup": False,
    "snapshot_attach_seconds": None,  # None: two controller steps
    "backup_poll_seconds": 300.0,
    "volume_list_scan_ns": 50.0,
    "call_delay_seconds": 0.0,
}


class Emulator:
    def __init__(self, state_dir: Path, version: str = "1.7", op_seconds: float = 2.0,
                 kubeconfig: Path | None = None, kube_sync_seconds: float = 2.0,
                 cr_namespace: str = "longhorn-system", etcd_url: str | None = None):
        if version not in LONGHORN_VERSIONS:
            raise ValueError(f"version must be one of {', '.join(LONGHORN_VERSIONS)}")
        self.dir = state_dir
        self.version = version
        self.op_seconds = op_seconds
        self.store = Store(state_dir)
        self.faults = Faults()
        self.active_volumes: set[str] = set()
        self.active_backups: set[str] = set()
        self.active_backup_volumes: set[str] = set()
        self.status_cache: dict[str, tuple[int, str]] = {}
        self.active_snapshots: set[str] = set()
        self.scan_pairs = 0  # (volume x backup) pairs the modelled manager has scanned
        self.last_ttl_sweep = 0.0
        self.kube = None
        self.mirror = None
        if kubeconfig:
            from .k8s import KubeBridge
            from .mirror import CrMirror
            self.kube = KubeBridge(self, kubeconfig, kube_sync_seconds)
            self.mirror = CrMirror(self, kubeconfig, cr_namespace, etcd_url=etcd_url)
            self.store.listener = self.mirror
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # Versions and names ------------------------------------------------------
    @property
    def v18(self) -> bool:
        return self.version == "1.8"

    @property
    def longhorn_version(self) -> str:
        return LONGHORN_VERSIONS[self.version]

    @property
    def engine_image(self) -> str:
        return f"longhornio/longhorn-engine:{self.longhorn_version}"

    def bv_id(self, volume: str) -> str:
        """Backup volume name: the volume name up to 1.7; <volume>-<8 hex> from 1.8."""
        if not self.v18:
            return volume
        return f"{volume}-{util.short_hash(f'{volume}-{BACKUP_TARGET}')}"

    # Runtime configuration ---------------------------------------------------------------
    @property
    def config(self) -> dict:
        saved = self.store.get("meta", "config") or {}
        return {**DEFAULT_CONFIG, **saved}

    def set_config(self, **changes) -> dict:
        with self.store.lock:
            saved = dict(self.store.get("meta", "config") or {})
            saved.update(changes)
            self.store.put("meta", "config", saved)
        return self.config

    def snapshot_max_count(self, volume: dict) -> int:
        """The volume's own count, else the setting (Longhorn's mutator copies it at create time)."""
        return volume.get("snapshotMaxCountSet") or int(self.config["snapshot_max_count"])

    def scan(self, volumes: int) -> None:
        """The manager's cost of building `volumes` volumes' backupStatus: one label-selector List
        over every Backup object per volume (api/volume.go -> ListBackupsForVolumeSorted ->
        datastore listBackupsWithBTAndVolNameRO). Counted, and slept at volume_list_scan_ns per pair."""
        pairs = volumes * len(self.store.tables["backups"])
        self.scan_pairs += pairs
        cost = pairs * float(self.config["volume_list_scan_ns"]) / 1e9
        if cost > 0:
            time.sleep(cost)

    @property
    def attach_seconds(self) -> float:
        value = self.config["snapshot_attach_seconds"]
        return 2 * self.step if value is None else float(value)

    @property
    def step(self) -> float:
        """How long one attach/detach/delete step takes."""
        return max(0.02, self.op_seconds * 0.1)

    # Files -------------------------------------------------------------------
    def volume_dir(self, volume: str) -> Path:
        return self.dir / "volumes" / volume

    def snapshot_dir(self, volume: str, snapshot: str) -> Path:
        return self.dir / "snapshots" / volume / snapshot

    def backup_dir(self, bv_id: str, backup: str) -> Path:
        return self.dir / "backupstore" / bv_id / backup

    def remove_dir(self, path: Path) -> None:
        shutil.rmtree(path, ignore_errors=True)

    # Attachment tickets (shared by restores, backups and the attach action) ----
    def set_ticket(self, volume: str, ticket_id: str, ticket: dict | None) -> None:
        with self.store.lock:
            record = self.store.get("volumes", volume)
            if record is None:
                return
            tickets = dict(record["tickets"])
            if ticket is None:
                if tickets.pop(ticket_id, None) is None:
                    return
            else:
                tickets[ticket_id] = ticket
            self.store.update("volumes", volume, tickets=tickets)
            self.active_volumes.add(volume)

    # Lifecycle ---------------------------------------------------------------
    def start(self) -> None:
        self.store.load()
        with self.store.lock:
            self.active_volumes = {v["name"] for v in self.store.tables["volumes"].values()
                                   if volumes.needs_attention(v)}
            self.active_backups = {b["name"] for b in self.store.tables["backups"].values()
                                   if b.get("op") or b.get("deleting")}
            self.active_backup_volumes = {bv["id"] for bv in self.store.tables["backup_volumes"].values()
                                          if bv.get("deleting")}
            self.active_snapshots = {s["name"] for s in self.store.tables["snapshots"].values()
                                     if s.get("ticket")}
        self._thread = threading.Thread(target=self._loop, name="longhorn-controllers", daemon=True)
        self._thread.start()
        if self.kube:
            self.kube.start()
        if self.mirror:
            self.mirror.start()

    def stop(self) -> None:
        self._stop.set()
        if self.kube:
            self.kube.stop()
        if self.mirror:
            self.mirror.stop()
        if self._thread:
            self._thread.join(timeout=5)
        self.store.compact()
        self.store.close()

    def _loop(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            try:
                self.tick(util.now())
            except Exception:  # a bug in one tick must not stop the controllers
                log.exception("controller tick failed")

    def tick(self, now: float) -> None:
        backups.advance(self, now)
        snapshots.advance(self, now)
        volumes.advance(self, now)

    def reset(self) -> None:
        """Forget every volume and backup (control API)."""
        with self.store.lock:
            self.store.clear()
            self.active_volumes.clear()
            self.active_backups.clear()
            self.active_backup_volumes.clear()
            self.active_snapshots.clear()
            self.status_cache.clear()
            self.scan_pairs = 0
            for sub in ("volumes", "snapshots", "backupstore"):
                self.remove_dir(self.dir / sub)
            self.store.compact()
