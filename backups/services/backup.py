"""Back up one PVC, or every bound PVC of a namespace.

The same use-case serves the API, the console and the policy evaluator.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from datetime import timezone as tz

from django.conf import settings
from django.db import IntegrityError, connections, transaction
from django.utils import timezone

from soteria_site.core import events, liveness
from soteria_site.core.errors import Conflict, SoteriaError
from soteria_site.core.names import POLICY_LABEL, fit_name, label_value, require_dns_label, require_dns_subdomain, tags_to_labels

from .. import drivers
from .. import types as t
from ..drivers import job_bodies
from ..models import OperationLock
from ..types import BackupResult, NamespaceBackupResult, PvcBackups, PvcOutcome
from . import claims, inventory_cache
from .counting import BACKUP_REQUESTS, NAMESPACE_BACKUP_REQUESTS, batch_result, counted

log = logging.getLogger(__name__)
LOCK_KEY_MAX = 255  # OperationLock.key's max_length
LOCK_SECONDS = 120  # at least; a backup holds its lock while it waits for its snapshot


def _lock_seconds() -> int:
    """Longer than the longest wait under the lock: a backup waits up to the snapshot timeout."""
    return max(LOCK_SECONDS, settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS + 60)


@contextmanager
def pvc_lock(namespace: str, pvc: str, operation: str = "backup"):
    """One backup (or restore to one target) per PVC at a time in this Soteria, through a
    row with a unique key in the shared database; Longhorn's own in-progress state and
    Kubernetes' 409 on an existing PVC guard across replicas."""
    key = fit_name(f"{operation}:{namespace}/{pvc}", LOCK_KEY_MAX)
    now = timezone.now()
    OperationLock.objects.filter(key=key, expires_at__lt=now).delete()
    for held in OperationLock.objects.filter(key=key).values_list("id", "holder"):
        if liveness.is_dead(held[1]):  # killed while it held the lock: it will never release it
            log.warning("%s of PVC %s/%s: taking over the lock of %s, which no longer runs", operation,
                        namespace, pvc, held[1])
            OperationLock.objects.filter(id=held[0], holder=held[1]).delete()
    try:
        with transaction.atomic():
            lock = OperationLock.objects.create(key=key, expires_at=now + timedelta(seconds=_lock_seconds()),
                                                holder=liveness.holder())
    except IntegrityError:
        raise Conflict(f"a {operation} of PVC {namespace}/{pvc} is already being started",
                       code="backup_in_progress" if operation == "backup" else "restore_in_progress") from None
    try:
        yield
    finally:
        OperationLock.objects.filter(id=lock.id).delete()


def backup_claim(claim: claims.Claim, labels: dict[str, str], requested_by: str, dry_run: bool,
                 now: datetime | None = None) -> BackupResult:
    """Back up (or plan) one resolved claim: the per-PVC step of single and namespace backups."""
    driver = drivers.for_claim(claim)
    now = now or datetime.now(tz.utc)
    if dry_run:  # a plan changes nothing, so it needs no lock
        return driver.backup(claim, labels, requested_by, dry_run, now)
    with pvc_lock(*claim.key):
        result = driver.backup(claim, labels, requested_by, dry_run, now)
    inventory_cache.record_backup(*claim.key, result.backup)  # /metrics shows it running now
    label_text = ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) or "none"
    events.emit_on_pvc(claim.pvc, "BackupStarted",
                 f"Backup {result.backup} of volume {result.volume} ({driver.name}) requested by "
                 f"{requested_by}; labels: {label_text}")
    return result


def backup_pvc(namespace: str, pvc: str, tags: list[str], requested_by: str, dry_run: bool = False, *,
               policy_id: str = "") -> BackupResult:
    """POST /v1/backup: validate everything, then resolve and back up one PVC.

    `tags` are the user's (Soteria's own label keys refused); the policy evaluator names
    its policy in `policy_id`, which becomes the `policy` label retention selects by."""
    with counted(BACKUP_REQUESTS, dry_run) as counted_as:
        require_dns_label(namespace, "namespace")
        require_dns_subdomain(pvc, "pvc")
        labels = tags_to_labels(tags)
        if policy_id:
            # A policy id (`<namespace>.<pvc>`) may pass 63 characters: the label holds it shortened.
            labels[POLICY_LABEL] = label_value(policy_id)
        claim = claims.get_claim(namespace, pvc)
        counted_as.driver = drivers.for_claim(claim).name
        return backup_claim(claim, labels, requested_by, dry_run)


def backup_namespace(namespace: str, tags: list[str], requested_by: str, dry_run: bool = False) -> NamespaceBackupResult:
    """POST /v1/backup/namespace: every bound PVC the driver handles, a few at a time.
    One PVC failing never stops the others."""
    with counted(NAMESPACE_BACKUP_REQUESTS, dry_run) as counted_as:
        require_dns_label(namespace, "namespace")
        labels = tags_to_labels(tags)
        driver = drivers.current()
        claims.require_namespace(namespace)
        outcomes = _backup_each(claims.list_batch(namespace), driver, labels, requested_by, dry_run)
        result = NamespaceBackupResult(driver=driver.name, namespace=namespace, requested_by=requested_by,
                                       dry_run=dry_run, results=outcomes)
        counted_as.result = batch_result(dry_run, result.totals["failed"], result.totals["success"])
    return result


def _backup_each(claim_list, driver, labels, requested_by, dry_run) -> list[PvcOutcome]:
    outcomes: dict[str, PvcOutcome] = {}
    todo = []
    for claim in claim_list:
        if not claim.bound:
            outcomes[claim.pvc.name] = PvcOutcome(claim.pvc.name, "skipped", error="pvc_not_bound",
                                                  detail=f"{t.NOT_BOUND} (phase {claim.pvc.phase})")
        elif not driver.supports(claim):
            outcomes[claim.pvc.name] = PvcOutcome(claim.pvc.name, "skipped", volume=claim.pv.name,
                                                  error="unsupported_driver",
                                                  detail=f"{t.UNSUPPORTED_DRIVER}: not a {driver.name} volume")
        else:
            todo.append(claim)

    def one(claim) -> PvcOutcome:
        try:
            with counted(BACKUP_REQUESTS, dry_run) as counted_as:
                counted_as.driver = drivers.for_claim(claim).name
                result = backup_claim(claim, labels, requested_by, dry_run)
        except SoteriaError as exc:
            return PvcOutcome(claim.pvc.name, "failed", error=exc.code, detail=exc.detail)
        except Exception as exc:  # noqa: BLE001 - one PVC must not stop the others
            log.exception("backup of %s/%s failed", *claim.key)
            return PvcOutcome(claim.pvc.name, "failed", error="internal_error", detail=str(exc))
        finally:
            connections.close_all()  # this pool thread's database connection
        return PvcOutcome(claim.pvc.name, "planned" if dry_run else "success", volume=result.volume,
                          backup=result.backup, plan=result.plan if dry_run else ())

    if todo and not dry_run:
        todo = job_bodies.with_mount_nodes(todo)  # where each backup's Job must run, one pod list for all
    if todo:
        with ThreadPoolExecutor(max_workers=settings.SOTERIA_NAMESPACE_CONCURRENCY) as pool:
            for outcome in pool.map(one, todo):
                outcomes[outcome.pvc] = outcome
    return [outcomes[name] for name in sorted(outcomes)]


def list_backups(namespace: str, pvc: str) -> PvcBackups:
    """GET /v1/backups: the PVC's volume and its backups, newest first."""
    claim = claims.get_claim(namespace, pvc)
    volume, records = drivers.for_claim(claim).list_backups(claim)
    return PvcBackups(namespace=namespace, pvc=pvc, volume=volume, backups=records)
