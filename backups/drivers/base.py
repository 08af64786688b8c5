"""What every backup driver offers the services."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from soteria_site.core.errors import Conflict, SoteriaError, UpstreamTimeout, UpstreamUnavailable
from soteria_site.core.kubernetes import Pvc

from ..types import BackupFacts, BackupRecord, BackupResult, Claim, Probe, RestorePlan, RestoreProgress


@dataclass(frozen=True)
class VolumeView:
    """How a driver sees one claim: its volume and backups, or why it cannot handle it."""

    volume: str
    supported: bool
    missing: bool = False
    facts: BackupFacts = BackupFacts()
    detail: str = ""
    # The driver that handles the claim ("" = the configured one): SOTERIA_BACKUP_DRIVER=auto mixes two.
    driver: str = ""


class Driver(Protocol):
    name: str

    def supports(self, claim: Claim) -> bool:
        """Whether this driver handles the claim (for an unbound one: would, once bound)."""

    def describe(self, claims: list[Claim], now: datetime) -> dict[tuple[str, str], VolumeView]:
        """Backup facts for many claims in a constant number of upstream calls."""

    def list_backups(self, claim: Claim) -> tuple[str, list[BackupRecord]]:
        """The claim's volume and its backups, newest first."""

    def backup(self, claim: Claim, labels: dict[str, str], requested_by: str, dry_run: bool,
               now: datetime) -> BackupResult:
        """Start a backup of the claim (or plan it)."""

    def refuse_foreign_backup_url(self, claim: Claim, backup_url: str) -> None:
        """Raise InvalidInput (field backup_url) when the URL names a backup of another volume
        than the claim's; judged from the URL alone, without an upstream call."""

    def plan_restore(self, claim: Claim, snapshot: str, backup_url: str, target_namespace: str,
                     target_pvc: str) -> RestorePlan:
        """Choose the backup and name what a restore will create, without creating anything."""

    def restore(self, plan: RestorePlan, claim: Claim, requested_by: str) -> RestorePlan | None:
        """Create what the plan names; on failure undo it and raise with the cleanup outcome.
        Returns the plan as carried out when it differs (e.g. sizes), else None."""

    def delete_backups(self, claim: Claim, names: list[str]) -> None:
        """Delete these backups of the claim (retention)."""

    def restore_progress(self, pvcs: list[Pvc]) -> dict[tuple[str, str], RestoreProgress]:
        """How far the restore of each of these restored claims has got, keyed by (namespace, pvc),
        in a constant number of upstream calls."""

    def probe(self, timeout: float) -> Probe:
        """Readiness: raise SoteriaError when the driver's upstream does not answer within `timeout`."""


def restore_failed(exc: SoteriaError, cleanup: dict) -> SoteriaError:
    """A restore's failure, told with what its cleanup deleted (`cleanup`: succeeded, deleted):
    the error answered to the caller names both, and a target that appeared meanwhile is
    `target_exists`."""
    exc.extra["cleanup"] = cleanup
    exc.detail = (f"{exc.detail} (cleanup {'succeeded' if cleanup['succeeded'] else 'FAILED'}: "
                  f"{', '.join(cleanup['deleted']) or 'nothing to delete'})")
    if isinstance(exc, Conflict) and "already exists" in exc.detail:
        exc.code = "target_exists"
    return exc


def unanswered(exc: SoteriaError) -> bool:
    """Whether a create that failed this way may have been carried out all the same: the
    upstream did not answer in time, or the connection broke before its answer. A restore's
    cleanup then deletes what that create would have made, in case it exists."""
    return isinstance(exc, (UpstreamTimeout, UpstreamUnavailable))
