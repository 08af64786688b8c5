"""The worker's policy tasks: evaluation and the inventory refresh (scheduled by soteria_site.core.schedules)."""

from django.conf import settings

from soteria_site.core.schedules import ScheduleSpec

from . import evaluate, services


def evaluate_policies() -> dict:
    report = evaluate.evaluate()
    return {"leader": report.leader, "due": len(report.due), "started": len(report.started),
            "failed": len(report.failed), "skipped": len(report.skipped),
            "drills_started": len(report.drills_started), "drills_skipped": len(report.drills_skipped),
            "drills_failed": len(report.drills_failed)}


def refresh_inventory() -> dict:
    result = services.share_inventory()
    return {"refreshed": result.cached is not None, "source": result.source,
            "pvcs": len(result.cached.rows) if result.cached else None}


SCHEDULES = [ScheduleSpec("policy-evaluation", "policies.tasks.evaluate_policies", settings.SOTERIA_POLICY_EVAL_SECONDS),
             # The cached inventory behind /metrics carries each PVC's policy interval, so the
             # policies app (above backups) runs its refresh; also at start, so that a restart
             # does not leave /metrics without its per-PVC gauges for an interval.
             ScheduleSpec("inventory-refresh", "policies.tasks.refresh_inventory",
                          settings.SOTERIA_METRICS_REFRESH_SECONDS, at_start=True)]
