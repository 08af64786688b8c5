"""Backup drivers behind one interface (see base.Driver).

`current()` is the configured driver; `for_claim(claim)` the one that handles a claim.
With SOTERIA_BACKUP_DRIVER=auto (an extension) the configured driver is `AutoDriver`:
Longhorn for claims on Longhorn volumes, restic for every other claim, behind the same
interface, so services, the inventory and the metrics see one driver per claim.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings

from soteria_site.core.errors import SoteriaError
from soteria_site.core.kubernetes import Pvc

from ..types import BackupRecord, BackupResult, Claim, Probe, RestorePlan, RestoreProgress
from .base import Driver, VolumeView


class DriverUnavailable(SoteriaError):
    status = 501
    code = "driver_unavailable"


def _longhorn() -> Driver:
    from . import longhorn

    return longhorn.DRIVER


def _restic() -> Driver:
    from . import restic

    return restic.DRIVER


class AutoDriver:
    """Longhorn where the claim is a Longhorn volume (or, unbound, of a Longhorn class); restic elsewhere."""

    name = "auto"

    def pick(self, claim: Claim) -> Driver:
        longhorn = _longhorn()
        return longhorn if longhorn.supports(claim) else _restic()

    def supports(self, claim: Claim) -> bool:
        return True

    def describe(self, claims: list[Claim], now: datetime) -> dict[tuple[str, str], VolumeView]:
        longhorn = _longhorn()
        mine = [c for c in claims if longhorn.supports(c)]
        rest = [c for c in claims if not longhorn.supports(c)]
        views = longhorn.describe(mine, now) if mine else {}
        if rest:
            views.update(_restic().describe(rest, now))
        return views

    def list_backups(self, claim: Claim) -> tuple[str, list[BackupRecord]]:
        return self.pick(claim).list_backups(claim)

    def backup(self, claim: Claim, labels: dict[str, str], requested_by: str, dry_run: bool,
               now: datetime) -> BackupResult:
        return self.pick(claim).backup(claim, labels, requested_by, dry_run, now)

    def refuse_foreign_backup_url(self, claim: Claim, backup_url: str) -> None:
        self.pick(claim).refuse_foreign_backup_url(claim, backup_url)

    def plan_restore(self, claim: Claim, snapshot: str, backup_url: str, target_namespace: str,
                     target_pvc: str) -> RestorePlan:
        return self.pick(claim).plan_restore(claim, snapshot, backup_url, target_namespace, target_pvc)

    def restore(self, plan: RestorePlan, claim: Claim, requested_by: str) -> RestorePlan | None:
        return self.pick(claim).restore(plan, claim, requested_by)

    def delete_backups(self, claim: Claim, names: list[str]) -> None:
        self.pick(claim).delete_backups(claim, names)

    def restore_progress(self, pvcs: list[Pvc]) -> dict[tuple[str, str], RestoreProgress]:
        from .restic_jobs import DRIVER_LABEL

        restic_pvcs = [p for p in pvcs if p.labels.get(DRIVER_LABEL) == "restic"]
        others = [p for p in pvcs if p.labels.get(DRIVER_LABEL) != "restic"]
        progress = _longhorn().restore_progress(others) if others else {}
        if restic_pvcs:
            progress.update(_restic().restore_progress(restic_pvcs))
        return progress

    def probe(self, timeout: float) -> Probe:
        longhorn, restic = _longhorn().probe(timeout), _restic().probe(timeout)
        detail = "; ".join(d for d in (longhorn.detail, restic.detail) if d)
        return Probe(detail=detail, hints={**longhorn.hints, **restic.hints})


AUTO = AutoDriver()


def current() -> Driver:
    name = settings.SOTERIA_BACKUP_DRIVER
    if name == "longhorn":
        return _longhorn()
    if name == "restic":
        return _restic()
    if name == "auto":
        return AUTO
    raise DriverUnavailable(f"the {name} driver is not available in this version of Soteria")


def for_claim(claim: Claim) -> Driver:
    """The driver that handles this claim: the configured one, or with `auto` Longhorn or restic."""
    driver = current()
    return driver.pick(claim) if isinstance(driver, AutoDriver) else driver
