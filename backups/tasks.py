"""The worker's backups tasks (scheduled by soteria_site.schedules)."""

from django.conf import settings

from soteria_site.schedules import ScheduleSpec

from .services import snapshot


def refresh_inventory() -> dict:
    result = snapshot.refresh()
    return {"refreshed": result is not None, "pvcs": len(result.rows) if result else None}


SCHEDULES = [ScheduleSpec("inventory-refresh", "backups.tasks.refresh_inventory",
                          settings.SOTERIA_METRICS_REFRESH_SECONDS)]
