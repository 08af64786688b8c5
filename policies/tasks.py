"""The worker's policy tasks (scheduled by soteria_site.schedules)."""

from django.conf import settings

from soteria_site.schedules import ScheduleSpec

from . import evaluate


def evaluate_policies() -> dict:
    report = evaluate.evaluate()
    return {"leader": report.leader, "due": len(report.due), "started": len(report.started),
            "failed": len(report.failed), "skipped": len(report.skipped)}


SCHEDULES = [ScheduleSpec("policy-evaluation", "policies.tasks.evaluate_policies", settings.SOTERIA_POLICY_EVAL_SECONDS)]
