"""/metrics: what restore drills proved, per PVC, from the cached inventory."""

from datetime import timedelta

import pytest
import time_machine

from backups import tasks
from backups.services import drills
from policies.services import refresh_inventory
from tests.metrics.test_freshness_metrics import pvc, scrape
from tests.support.drills import record_drill
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]
VERIFIED = "pvc_restore_verified_timestamp_seconds"
FAILED = "pvc_restore_verify_failed"


def _refresh():
    with time_machine.travel(NOW, tick=False):
        assert refresh_inventory(now=NOW) is not None


@pytest.fixture
def drilled(cluster):
    for name in ("passed", "broken", "never"):
        cluster.add_pvc("ai", name, backups=[("Completed", 2, None)])
    record_drill("ai", "passed", "passed", NOW - timedelta(days=2), minutes=5)
    record_drill("ai", "broken", "passed", NOW - timedelta(days=9), minutes=5)
    record_drill("ai", "broken", "failed", NOW - timedelta(days=1), reason="2 differences from the backup's manifest")
    _refresh()
    return cluster


def test_the_last_passed_drill_is_a_timestamp_per_pvc(client, drilled):
    s = scrape(client)
    assert s[(VERIFIED, pvc("ai", "passed", "pvc-ai-passed"))] == (NOW - timedelta(days=2, minutes=-5)).timestamp()
    # A newer failed drill does not erase when the PVC was last proven restorable.
    assert s[(VERIFIED, pvc("ai", "broken", "pvc-ai-broken"))] == (NOW - timedelta(days=9, minutes=-5)).timestamp()


def test_a_pvc_without_a_passed_drill_has_no_verified_timestamp(client, drilled):
    record_drill("ai", "never", "unverified", NOW - timedelta(hours=3))
    _refresh()
    s = scrape(client)
    assert (VERIFIED, pvc("ai", "never", "pvc-ai-never")) not in s
    assert s[(FAILED, pvc("ai", "never", "pvc-ai-never"))] == 0


def test_the_failed_gauge_follows_the_newest_finished_drill(client, drilled):
    s = scrape(client)
    assert s[(FAILED, pvc("ai", "broken", "pvc-ai-broken"))] == 1
    assert s[(FAILED, pvc("ai", "passed", "pvc-ai-passed"))] == 0
    assert (FAILED, pvc("ai", "never", "pvc-ai-never")) not in s  # no drill yet: nothing to say


def test_a_drill_that_ended_in_error_neither_raises_nor_clears_a_failure(client, drilled):
    # broken's newest verdict is failed; a newer drill that could not run says nothing of the backup.
    record_drill("ai", "broken", "error", NOW - timedelta(hours=1), reason="Longhorn unavailable")
    record_drill("ai", "passed", "error", NOW - timedelta(hours=1), reason="Longhorn unavailable")
    _refresh()
    s = scrape(client)
    assert s[(FAILED, pvc("ai", "broken", "pvc-ai-broken"))] == 1
    assert s[(FAILED, pvc("ai", "passed", "pvc-ai-passed"))] == 0


def test_a_finished_drill_reaches_metrics_before_the_next_refresh_without_upstream_calls_at_scrape(
        client, drilled, monkeypatch):
    def run(drill_id, namespace, pvc_name):  # the worker's drill, ending in a pass
        record_drill(namespace, pvc_name, "passed", NOW - timedelta(minutes=10), drill_id=drill_id)
        return {"id": drill_id, "result": "passed"}

    monkeypatch.setattr(drills, "run", run)
    with time_machine.travel(NOW, tick=False):
        assert tasks.run_drill("d-1", "ai", "broken") == {"id": "d-1", "result": "passed"}
    drilled.calls.clear()
    s = scrape(client)
    broken = pvc("ai", "broken", "pvc-ai-broken")
    assert s[(VERIFIED, broken)] == (NOW - timedelta(minutes=7)).timestamp()
    assert s[(FAILED, broken)] == 0
    assert sum(drilled.calls.values()) == 0


def test_a_skipped_drill_task_leaves_the_cached_row_alone(client, drilled, monkeypatch):
    monkeypatch.setattr(drills, "run", lambda drill_id, namespace, pvc_name: {"id": drill_id, "skipped": True})
    record_drill("ai", "broken", "passed", NOW - timedelta(minutes=10))  # not yet seen by a refresh
    tasks.run_drill("d-2", "ai", "broken")
    assert scrape(client)[(FAILED, pvc("ai", "broken", "pvc-ai-broken"))] == 1
