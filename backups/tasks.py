"""The worker's backups tasks (scheduled by soteria_site.core.schedules)."""

from django.conf import settings

from soteria_site.core.schedules import ScheduleSpec

from .services import snapshot_cleanup


def prune_snapshots() -> dict:
    return snapshot_cleanup.prune()


# Soteria's snapshots of finished backups; a snapshot without a backup is pruned once older
# than the snapshot timeout, so run about that often.
SCHEDULES = [ScheduleSpec("snapshot-prune", "backups.tasks.prune_snapshots",
                          settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS)]
