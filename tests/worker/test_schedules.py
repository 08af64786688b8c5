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


def test_the_worker_start_queues_the_inventory_refresh_and_counts_it_as_the_interval_s_run(frozen):
    from datetime import timedelta

    from django.utils import timezone
    from django_q.models import OrmQ

    specs = [ScheduleSpec("inventory-refresh", "policies.tasks.refresh_inventory", 300, at_start=True), SPECS[1]]
    schedules.upsert(specs)
    assert schedules.start_now(specs) == ["soteria:inventory-refresh"]
    assert [q.func() for q in OrmQ.objects.all()] == ["policies.tasks.refresh_inventory"]
    rows = {s.name: s for s in Schedule.objects.all()}
    assert rows["soteria:inventory-refresh"].next_run == timezone.now() + timedelta(minutes=5)
    assert rows["soteria:policy-evaluation"].next_run == timezone.now()  # not run at start: as it was


def test_the_inventory_refresh_is_declared_to_run_at_start():
    [spec] = [s for s in schedules.declared() if s.name == "inventory-refresh"]
    assert spec.at_start and spec.func == "policies.tasks.refresh_inventory"
