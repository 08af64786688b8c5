"""The worker's backups tasks (scheduled by soteria_site.core.schedules)."""

from django.conf import settings

from soteria_site.core.schedules import ScheduleSpec

from .services import drills, inventory_cache, manifest_collection, restore, restore_leases, snapshot_cleanup


def prune_snapshots() -> dict:
    return snapshot_cleanup.prune()


def collect_manifests() -> dict:
    return manifest_collection.collect()


def run_drill(drill_id: str, namespace: str, pvc: str) -> dict:
    outcome = drills.run(drill_id, namespace, pvc)
    if not outcome.get("skipped"):  # /metrics shows the verdict now, not at the next refresh
        inventory_cache.record_verification(namespace, pvc)
    return outcome


def sweep_drills() -> dict:
    return drills.sweep()


def sweep_restores() -> dict:
    """Single restores whose process died are undone first; then namespace restores whose
    process died are queued again (their claim in flight at the kill is one of the former)."""
    return {**restore_leases.sweep(), **restore.resume_batches()}


def restore_planned(namespace: str, requested_by: str, plans: list | None, batch_id: str = "",
                    holder: str = "") -> dict:
    """The restores a POST /v1/restores/namespace planned and queued (its answer said `queued`),
    or a batch the restore sweep queued again (`plans` None)."""
    target, outcomes = restore.restore_planned(namespace, requested_by, plans, batch_id, holder)
    return {"namespace": namespace, "requested_by": requested_by, "batch": batch_id,
            "restored": [f"{target}/{o.target_pvc}" for o in outcomes if o.status == "restored"],
            "failed": {f"{target}/{o.target_pvc}": f"{o.error}: {o.detail}" for o in outcomes if o.status == "failed"},
            "notes": {f"{target}/{o.target_pvc}": o.detail for o in outcomes if o.status == "restored" and o.detail}}


SCHEDULES = [
    # Soteria's snapshots of finished backups; a snapshot without a backup is pruned once older
    # than the snapshot timeout, so run about that often.
    ScheduleSpec("snapshot-prune", "backups.tasks.prune_snapshots", settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS),
    # The manifests taken at backup time, kept before their Jobs go (a Longhorn manifest Job
    # is deleted once kept; restic's backup Jobs go after SOTERIA_JOB_TTL_SECONDS).
    ScheduleSpec("manifest-collection", "backups.tasks.collect_manifests", 60),
    # Drills whose worker died: found once their Lease (4 heartbeats) has expired.
    ScheduleSpec("drill-sweep", "backups.tasks.sweep_drills", 60),
    # Restores whose process died: found once their Lease (4 heartbeats) has expired.
    ScheduleSpec("restore-sweep", "backups.tasks.sweep_restores", 60),
]
