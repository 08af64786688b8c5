"""Soteria's memory of failed backups, so "last backup failed" does not drop out.

Longhorn deletes a failed Backup after its `failed-backup-ttl` setting (1440 minutes by
default), and a backup that fails before the engine starts has no snapshot name, hence
no time Soteria can read. The inventory refresh records every failed backup it sees
(dated when first seen, or by Soteria's snapshot name) in the `BackupFailure` table and
keeps a vanished one while it is newer than the volume's last success; every inventory
build reads the table once. Only the refresh writes it: never a request.

A driver reads and reports through the `Ledger` of the current build (a context
variable), so its facts function keeps its signature.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime

from django.core.cache import cache
from django.db import transaction

STARTED_KEY = "soteria:failure-ledger:started"


@dataclass(frozen=True)
class Failure:
    backup: str
    error: str
    first_seen: datetime | None  # None: already there when Soteria first looked (age unknown)


@dataclass
class Ledger:
    """What the table held when the build began, and what the build saw."""

    remembered: dict[str, dict[str, Failure]]  # volume -> backup -> failure
    dating: bool  # True once a refresh has run: a failure new since then is dated when first seen
    seen: dict[str, dict[str, Failure]] = field(default_factory=dict)

    def known(self, volume: str) -> dict[str, Failure]:
        return self.remembered.get(volume, {})

    def keep(self, volume: str, failures: list[Failure]) -> None:
        """The failures of `volume` to remember from now on (replaces what was remembered)."""
        self.seen[volume] = {f.backup: f for f in failures}


_current: ContextVar[Ledger | None] = ContextVar("soteria_failure_ledger", default=None)


def current() -> Ledger | None:
    return _current.get()


def load() -> Ledger:
    from ..models import BackupFailure

    remembered: dict[str, dict[str, Failure]] = {}
    for volume, backup, error, first_seen in BackupFailure.objects.values_list(
            "volume", "backup", "error", "first_seen").iterator(chunk_size=2000):
        remembered.setdefault(volume, {})[backup] = Failure(backup, error, first_seen)
    return Ledger(remembered=remembered, dating=cache.get(STARTED_KEY) is not None)


@contextmanager
def reading():
    """Make the table's content available to the drivers for one inventory build."""
    ledger = load()
    token = _current.set(ledger)
    try:
        yield ledger
    finally:
        _current.reset(token)


def save(ledger: Ledger) -> dict[str, int]:
    """Write what the build saw for the volumes it looked at; others stay as they are.
    Only rows that changed are written."""
    from ..models import BackupFailure

    added, removed, changed = [], [], []
    for volume, failures in ledger.seen.items():
        before = ledger.known(volume)
        for name, failure in failures.items():
            old = before.get(name)
            if old is None:
                added.append(BackupFailure(volume=volume, backup=name, error=failure.error[:2000],
                                           first_seen=failure.first_seen))
            elif old.error != failure.error[:2000]:
                changed.append((volume, name, failure.error[:2000]))
        removed += [(volume, name) for name in before if name not in failures]
    with transaction.atomic():
        if added:
            BackupFailure.objects.bulk_create(added, batch_size=500, ignore_conflicts=True)
        for volume, name, error in changed:
            BackupFailure.objects.filter(volume=volume, backup=name).update(error=error)
        for volume, name in removed:
            BackupFailure.objects.filter(volume=volume, backup=name).delete()
    cache.set(STARTED_KEY, True, timeout=None)
    return {"added": len(added), "removed": len(removed), "changed": len(changed)}
