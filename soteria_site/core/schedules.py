"""The worker's recurring tasks: a table in code, upserted by name at start.

Each app declares `SCHEDULES` in its tasks module. django-q2's own
`schedule()` adds a row per call, so `upsert()` updates rows by name instead,
and removes Soteria's rows that the code no longer declares. Missed runs
collapse into one (Q_CLUSTER catch_up is off).

A schedule may also run once as soon as the worker starts (`at_start`): django-q2's
scheduler first looks at the table some 30 s after the cluster starts, and a row kept
from the last run may not be due for a whole interval. `start_now()` queues those tasks
for the cluster's workers and counts that run as the interval's.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

PREFIX = "soteria:"
APPS_WITH_SCHEDULES = ("backups", "policies")


@dataclass(frozen=True)
class ScheduleSpec:
    name: str  # stable; prefixed with "soteria:" in the table
    func: str  # dotted path of a module-level function
    seconds: int  # interval; django-q2 counts whole minutes, so this rounds up
    at_start: bool = False  # also run once when the worker starts (start_now)

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))


def declared() -> list[ScheduleSpec]:
    specs: list[ScheduleSpec] = []
    for app in APPS_WITH_SCHEDULES:
        try:
            module = importlib.import_module(f"{app}.tasks")
        except ModuleNotFoundError as exc:
            if exc.name != f"{app}.tasks":
                raise
            continue
        specs.extend(getattr(module, "SCHEDULES", ()))
    return specs


@transaction.atomic
def upsert(specs: list[ScheduleSpec] | None = None) -> list[str]:
    """Make the schedule table match `specs` (default: every app's). Returns the names kept."""
    from django_q.models import Schedule

    specs = declared() if specs is None else specs
    names = []
    for spec in specs:
        name = PREFIX + spec.name
        names.append(name)
        row = Schedule.objects.filter(name=name).first()
        if row is None:
            Schedule.objects.create(name=name, func=spec.func, schedule_type=Schedule.MINUTES,
                                    minutes=spec.minutes, repeats=-1, next_run=timezone.now())
            continue
        changed = row.func != spec.func or row.minutes != spec.minutes or row.schedule_type != Schedule.MINUTES
        if changed:
            row.func, row.minutes, row.schedule_type, row.repeats = spec.func, spec.minutes, Schedule.MINUTES, -1
            row.next_run = timezone.now()
            row.save()
    Schedule.objects.filter(name__startswith=PREFIX).exclude(name__in=names).delete()
    return names


def start_now(specs: list[ScheduleSpec] | None = None) -> list[str]:
    """Queue each `at_start` task once, now, and move its schedule's next run one interval
    later. Returns the names queued."""
    from django_q.models import Schedule
    from django_q.tasks import async_task

    specs = declared() if specs is None else specs
    queued = []
    for spec in specs:
        if not spec.at_start:
            continue
        name = PREFIX + spec.name
        async_task(spec.func, task_name=f"{name} (at start)")
        Schedule.objects.filter(name=name).update(next_run=timezone.now() + timedelta(minutes=spec.minutes))
        queued.append(name)
    return queued
