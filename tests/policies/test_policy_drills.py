"""Policies with verify_every_hours: restore drills on a schedule, through the drill service."""

import json
import re
from datetime import timedelta
from types import SimpleNamespace

import pytest
import time_machine

from backups.services import drills
from policies import evaluate, services
from soteria_site.core.errors import Conflict, NotFound, UpstreamUnavailable
from tests.support.drills import record_drill
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]


def _policy(namespace, pvc="", hours=24.0, verify=None, enabled=True):
    with time_machine.travel(NOW - timedelta(days=30), tick=False):
        return services.save_policy(namespace, pvc, hours, enabled, None, [], "tester", verify_every_hours=verify)[0]


def _run(at=NOW):
    with time_machine.travel(at, tick=False):
        return evaluate.evaluate(now=at, holder="replica-a")


@pytest.fixture
def started(monkeypatch):
    """The drill service's start, recording who asked; `refuse[(ns, pvc)]` makes it refuse."""
    fake = SimpleNamespace(calls=[], refuse={})

    def start(namespace, pvc, requested_by, *, dry_run=False):
        fake.calls.append((namespace, pvc, requested_by))
        if (namespace, pvc) in fake.refuse:
            raise fake.refuse[(namespace, pvc)]
        return SimpleNamespace(id=f"drill-{pvc}")

    monkeypatch.setattr(drills, "start", start)
    return fake


# --- the policy's field ------------------------------------------------------------------
def test_verify_every_hours_is_stored_returned_and_off_when_absent(client, cluster):
    created = client.post("/v1/policies", {"namespace": "ai", "interval_hours": 6, "verify_every_hours": 168},
                          content_type="application/json")
    assert created.status_code == 201, created.content
    assert created.json()["verify_every_hours"] == 168
    stored = json.loads(cluster.secrets[("soteria", "soteria-policies")].data["policies.json"])
    assert stored["policies"][0]["verify_every_hours"] == 168
    updated = client.post("/v1/policies", {"namespace": "ai", "interval_hours": 6}, content_type="application/json")
    assert updated.status_code == 200 and updated.json()["verify_every_hours"] is None
    [listed] = client.get("/v1/policies").json()["policies"]
    assert listed["verify_every_hours"] is None and listed["next_drill_due_at"] is None


@pytest.mark.parametrize("value", [0, -1, 24 * 366 + 1, "24", True, float("inf")])
def test_a_bad_verify_every_hours_is_400_naming_the_field(client, cluster, value):
    body = json.dumps({"namespace": "ai", "interval_hours": 6, "verify_every_hours": value}).replace(
        "Infinity", "1e999")
    response = client.post("/v1/policies", body, content_type="application/json")
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "verify_every_hours"
    assert cluster.secrets == {}


def test_the_service_refuses_a_bad_value_from_any_caller(cluster):
    from soteria_site.core.errors import InvalidInput

    with pytest.raises(InvalidInput) as refused:
        services.save_policy("ai", "", 6, True, None, [], "t", verify_every_hours=float("nan"))
    assert refused.value.extra["field"] == "verify_every_hours"


def test_the_list_shows_when_the_next_drill_is_due(client, cluster):
    cluster.add_pvc("ai", "drilled", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "never-backed-up")
    record_drill("ai", "drilled", "passed", NOW - timedelta(hours=10))
    _policy("ai", verify=24)
    with time_machine.travel(NOW, tick=False):
        services.refresh_inventory()
        [listed] = client.get("/v1/policies").json()["policies"]
    # The PVC without a backup cannot be drilled, so it does not make the policy due now.
    assert listed["next_drill_due_at"] == "2026-04-13T05:30:00Z"


# --- evaluation ----------------------------------------------------------------------------
def test_due_pvcs_of_a_namespace_policy_are_drilled_and_others_are_not(cluster, started):
    for name in ("never-drilled", "drilled-long-ago", "drilled-lately", "no-backup", "elsewhere"):
        cluster.add_pvc("ai" if name != "elsewhere" else "media", name,
                        backups=[] if name == "no-backup" else [("Completed", 1, None)])
    record_drill("ai", "drilled-long-ago", "failed", NOW - timedelta(hours=25))
    record_drill("ai", "drilled-lately", "error", NOW - timedelta(hours=23))
    _policy("ai", verify=24)
    _policy("media")  # drills off
    report = _run()
    assert sorted(started.calls) == [("ai", "drilled-long-ago", "policy:ai"), ("ai", "never-drilled", "policy:ai")]
    assert report.drills_started == {"ai/drilled-long-ago": "drill-drilled-long-ago",
                                     "ai/never-drilled": "drill-never-drilled"}
    # The PVC without a backup gets its first one, and is drilled once that has completed.
    assert list(report.started) == ["ai/no-backup"]


def test_a_running_drill_counts_as_the_newest(cluster, started):
    cluster.add_pvc("ai", "busy", backups=[("Completed", 1, None)])
    record_drill("ai", "busy", "passed", NOW - timedelta(days=3))
    record_drill("ai", "busy", "running", NOW - timedelta(minutes=5))
    _policy("ai", verify=24)
    assert _run().drills_started == {} and started.calls == []


def test_a_pvcs_own_policy_decides_even_against_its_namespaces(cluster, started):
    cluster.add_pvc("ai", "a", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "b", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "c", backups=[("Completed", 1, None)])
    _policy("ai", verify=24)
    _policy("ai", "b")  # its own policy runs no drills
    _policy("ai", "c", verify=12, enabled=False)
    report = _run()
    assert sorted(report.drills_started) == ["ai/a"]


def test_refusals_are_skips_and_the_next_evaluation_tries_again(cluster, started):
    cluster.add_pvc("ai", "running-elsewhere", backups=[("Completed", 1, None)])
    cluster.add_pvc("ai", "ok", backups=[("Completed", 1, None)])
    started.refuse[("ai", "running-elsewhere")] = Conflict("a drill runs", code="drill_in_progress")
    _policy("ai", verify=24)
    first = _run()
    assert first.drills_skipped == {"ai/running-elsewhere": "drill_in_progress"}
    assert first.drills_failed == {} and list(first.drills_started) == ["ai/ok"]
    [policy] = services.list_policies()
    assert policy.last_result == "up_to_date" and "1 restore drill(s) started" in policy.last_detail
    del started.refuse[("ai", "running-elsewhere")]
    started.calls.clear()
    second = _run(NOW + timedelta(minutes=5))
    assert ("ai", "running-elsewhere", "policy:ai") in started.calls
    assert "ai/running-elsewhere" in second.drills_started and second.drills_skipped == {}


def test_once_at_capacity_the_rest_wait_without_asking(cluster, started):
    for name in ("a", "b", "c"):
        cluster.add_pvc("ai", name, backups=[("Completed", 1, None)])
    record_drill("ai", "b", "passed", NOW - timedelta(hours=30))
    record_drill("ai", "c", "passed", NOW - timedelta(hours=40))
    started.refuse[("ai", "c")] = drills.AtCapacity("2 restore drills are running")
    _policy("ai", verify=24)
    report = _run()
    # The longest overdue is asked first: a (never drilled), then c, which finds no slot.
    assert [pvc for _, pvc, _ in started.calls] == ["a", "c"]
    assert report.drills_skipped == {"ai/c": "drill_capacity", "ai/b": "drill_capacity"}


def test_a_pvc_that_lost_its_backups_meanwhile_is_skipped(cluster, started):
    cluster.add_pvc("ai", "gone", backups=[("Completed", 1, None)])
    started.refuse[("ai", "gone")] = NotFound("no successful backup", code="no_backup")
    _policy("ai", verify=24)
    assert _run().drills_skipped == {"ai/gone": "no_backup"}


def test_an_upstream_failure_is_reported_on_the_policy_not_raised(cluster, started):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    started.refuse[("ai", "db")] = UpstreamUnavailable("kubernetes", "down")
    _policy("ai", verify=24)
    report = _run()
    assert list(report.drills_failed) == ["ai/db"]
    [policy] = services.list_policies()
    assert "1 restore drill(s) not started: ai/db" in policy.last_detail


def test_the_drill_records_are_read_once_per_evaluation(cluster, started):
    for i in range(6):
        cluster.add_pvc("ai", f"pvc-{i}", backups=[("Completed", 1, None)])
        record_drill("ai", f"pvc-{i}", "passed", NOW - timedelta(hours=i * 10))
    _policy("ai", verify=24)
    cluster.calls.clear()
    report = _run()
    assert sorted(report.drills_started) == ["ai/pvc-3", "ai/pvc-4", "ai/pvc-5"]
    # One list for the inventory's verification column, one for the drill schedule.
    assert cluster.calls["list_config_maps"] == 2 and cluster.calls["find_config_map"] == 0


def test_a_bug_in_starting_a_drill_does_not_stop_retention_or_the_results(cluster, started):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    started.refuse[("ai", "db")] = ImportError("a module is missing")
    _policy("ai", verify=24)
    report = _run()
    assert report.drills_failed == {"ai/db": "internal error: a module is missing"}
    [policy] = services.list_policies()
    assert policy.last_run_at == NOW


# --- the console ---------------------------------------------------------------------------
def _cell(html: str, row: str, cell: str) -> str:
    """The text of the cell marked `cell` in the table row marked `row`."""
    found = re.search(rf"<tr {row}>(.*?)</tr>", html, re.S)
    text = re.search(rf"<td[^>]*{cell}[^>]*>(.*?)</td>", found.group(1), re.S).group(1)
    return re.sub(r"<[^>]+>", "", text).strip()


def test_the_console_saves_drills_and_lists_them_with_the_next_due_time(client, cluster):
    cluster.add_pvc("ai", "db", backups=[("Completed", 1, None)])
    record_drill("ai", "db", "passed", NOW - timedelta(hours=2))
    saved = client.post("/policies/save", {"namespace": "ai", "interval_hours": "6", "verify_every_hours": "48",
                                           "enabled": "on"})
    assert saved.status_code == 302
    client.post("/policies/save", {"namespace": "media", "interval_hours": "6", "enabled": "on"})
    assert [p.verify_every_hours for p in services.list_policies()] == [48.0, None]
    with time_machine.travel(NOW, tick=False):
        services.refresh_inventory()
        page = client.get("/policies/").content.decode()
    assert _cell(page, 'data-policy="ai"', "data-verify") == "48"
    assert _cell(page, 'data-policy="ai"', "data-next-drill") == "2026-04-14 13:30"
    assert _cell(page, 'data-policy="media"', "data-verify") == "off"
    assert _cell(page, 'data-policy="media"', "data-next-drill") == "—"


def test_the_console_refuses_a_bad_drill_interval_and_saves_nothing(client, cluster):
    response = client.post("/policies/save", {"namespace": "ai", "interval_hours": "6", "verify_every_hours": "0"},
                           follow=True)
    assert "verify_every_hours" in response.content.decode()
    assert services.list_policies() == []
