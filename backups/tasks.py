"""The worker's backups tasks (scheduled by soteria_site.schedules)."""

from django.conf import settings

from soteria_site.schedules import ScheduleSpec

from .services import snapshot, snapshot_cleanup


def refresh_inventory() -> dict:
    result = snapshot.refresh()
    return {"refreshed": result is not None, "pvcs": len(result.rows) if result else None}


def prune_snapshots() -> dict:
    return snapshot_cleanup.prune()


SCHEDULES = [ScheduleSpec("inventory-refresh", "backups.tasks.refresh_inventory",
                          settings.SOTERIA_METRICS_REFRESH_SECONDS),
             # Soteria's snapshots of finished backups; a snapshot without a backup is
             # pruned once older than the snapshot timeout, so run about that often.
             ScheduleSpec("snapshot-prune", "backups.tasks.prune_snapshots",
                          settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS)]
