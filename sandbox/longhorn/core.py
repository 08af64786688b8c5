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
from pathlib import Path

from . import backups, util, volumes
from .constants import BACKUP_TARGET, LONGHORN_VERSIONS
from .faults import Faults
from .store import Store

log = logging.getLogger(__name__)

TICK_SECONDS = 0.05


class Emulator:
    def __init__(self, state_dir: Path, version: str = "1.7", op_seconds: float = 2.0,
                 kubeconfig: Path | None = None, kube_sync_seconds: float = 2.0):
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
        self.kube = None
        if kubeconfig:
            from .k8s import KubeBridge
            self.kube = KubeBridge(self, kubeconfig, kube_sync_seconds)
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
        self._thread = threading.Thread(target=self._loop, name="longhorn-controllers", daemon=True)
        self._thread.start()
        if self.kube:
            self.kube.start()

    def stop(self) -> None:
        self._stop.set()
        if self.kube:
            self.kube.stop()
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
        volumes.advance(self, now)

    def reset(self) -> None:
        """Forget every volume and backup (control API)."""
        with self.store.lock:
            self.store.clear()
            self.active_volumes.clear()
            self.active_backups.clear()
            self.active_backup_volumes.clear()
            self.status_cache.clear()
            for sub in ("volumes", "snapshots", "backupstore"):
                self.remove_dir(self.dir / sub)
            self.store.compact()
