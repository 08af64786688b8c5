"""Schedules are declared in code and upserted by name: idempotent, never duplicated."""

import pytest
from django_q.models import Schedule

from soteria_site.core import schedules
from soteria_site.core.schedules import ScheduleSpec

pytestmark = pytest.mark.django_db

SPECS = [ScheduleSpec("inventory-refresh", "policies.tasks.refresh_inventory", 300),
         ScheduleSpec("policy-evaluation", "policies.tasks.evaluate_policies", 90)]


def test_upsert_creates_one_row_per_schedule_and_is_idempotent():
    schedules.upsert(SPECS)
    schedules.upsert(SPECS)
    rows = {s.name: s for s in Schedule.objects.all()}
    assert set(rows) == {"soteria:inventory-refresh", "soteria:policy-evaluation"}
    assert rows["soteria:inventory-refresh"].minutes == 5
    assert rows["soteria:policy-evaluation"].minutes == 2  # 90 s rounds up to whole minutes
    assert rows["soteria:policy-evaluation"].repeats == -1


def test_upsert_updates_a_changed_interval_in_place():
    schedules.upsert(SPECS)
    first_id = Schedule.objects.get(name="soteria:inventory-refresh").id
    schedules.upsert([ScheduleSpec("inventory-refresh", "policies.tasks.refresh_inventory", 600), SPECS[1]])
    row = Schedule.objects.get(name="soteria:inventory-refresh")
    assert row.id == first_id and row.minutes == 10


def test_upsert_drops_schedules_no_longer_declared_but_keeps_foreign_ones():
    Schedule.objects.create(name="someone-else", func="math.floor", schedule_type=Schedule.MINUTES, minutes=1)
    schedules.upsert(SPECS)
    schedules.upsert(SPECS[:1])
    assert set(Schedule.objects.values_list("name", flat=True)) == {"soteria:inventory-refresh", "someone-else"}


def test_declared_schedules_point_at_real_functions():
    import importlib

    for spec in schedules.declared():
        module, func = spec.func.rsplit(".", 1)
        assert callable(getattr(importlib.import_module(module), func)), spec
