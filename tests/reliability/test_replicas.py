"""Issue 17: two Soteria replicas against one cluster, on the sandbox.

Each replica is a real gunicorn and a real `manage.py qcluster` with its own SOTERIA_DATA_DIR
(its own SQLite: queue, schedules, cached inventory), and each worker runs under its own
hostname, as two pods do. Both evaluate the policies at the same moments: the Lease lets
exactly one start backups, so each due PVC is backed up once per due time. Each replica
refreshes its cached inventory once per refresh interval (its start-up refresh counts as the
interval's: the schedule's first run does not refresh it again), but only the holder of the
refresh Lease builds it: the other copies the rows it publishes, so both /metrics show every
PVC for one build per interval (docs/reliability.md).
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime

import pytest

from sandbox import faults, seed
from tests.support.http import http_json
from tests.support.metrics import scrape
from tests.support.polling import wait_for
from tests.support.reliability import FULL, size
from tests.support.soteria import Worker, start_soteria, stop_soteria

NAMESPACE = "rel-replicas"
INVENTORY_NAMESPACE = "rel-replicas-inventory"
# Full size only (the test is skipped in `./dev test`, whose time budget it would exceed).
PVCS = [f"data-{i}" for i in range(8)]
ROUNDS = 10  # evaluations of both replicas at once
REFRESHES = 4  # inventory refreshes of each replica watched (the first at start)
SECRET = "soteria-policies-replicas"
OLD = "2020-01-01T00:00:00Z"


@pytest.fixture
def replicas(sandbox, tmp_path):
    """Two replicas' web servers (workers are the test's to start)."""
    servers, workers = [], []
    try:
        for name in ("replica-a", "replica-b"):
            server = start_soteria(sandbox, tmp_path / name, workers=1, SOTERIA_POLICY_SECRET_NAME=SECRET,
                                   SOTERIA_POLICY_EVAL_SECONDS=60, SOTERIA_METRICS_REFRESH_SECONDS=60)
            servers.append(server)
        yield servers, workers
    finally:
        for worker in workers:
            worker.stop()
        for server in servers:
            stop_soteria(server)


def _tasks(server, func: str) -> list[tuple[str, datetime, bool]]:
    """(schedule name, or "" when queued otherwise; start; success) of every run of `func` this
    replica's worker finished, oldest first."""
    with sqlite3.connect(f"file:{server.data_dir / 'soteria.sqlite3'}?mode=ro", uri=True, timeout=10) as db:
        rows = db.execute('SELECT "group", name, started, success FROM django_q_task WHERE func = ? ORDER BY started',
                          (func,)).fetchall()
    return [(group or (name if name.endswith("(at start)") else ""), datetime.fromisoformat(started), bool(ok))
            for group, name, started, ok in rows]


def _policy_backups(server, pvc: str) -> list[dict]:
    status, body = http_json(f"{server.url}/v1/backups?namespace={NAMESPACE}&pvc={pvc}")
    assert status == 200, body
    return [b for b in body["backups"] if b["labels"].get("policy") == NAMESPACE]


def _forget_leases(cfg) -> None:
    """The Leases and the inventory publication of Soterias of earlier tests (stopped, but their
    Leases may not have expired yet)."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api_client = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    leases, core = client.CoordinationV1Api(api_client), client.CoreV1Api(api_client)
    for delete, name in ((leases.delete_namespaced_lease, "soteria-policy-evaluator"),
                         (leases.delete_namespaced_lease, "soteria-inventory-refresh"),
                         (core.delete_namespaced_config_map, "soteria-inventory")):
        try:
            delete(name, "soteria")
        except ApiException as exc:
            if exc.status != 404:
                raise


def _shared(server) -> dict[str, float]:
    """This replica's inventory refreshes (and publications) by outcome, from its /metrics."""
    return {dict(key)["outcome"]: value for key, value in scrape(server).select("soteria_inventory_sharing_total").items()}


def _one_builder(shared: dict[str, dict[str, float]], runs_of: dict[str, int]) -> None:
    """One replica built at every one of its refreshes and published; the other built nothing
    after its start (when both start at once, it may find nothing published yet and build
    rather than stay without rows) and copied the builder's rows."""
    builder = max(shared, key=lambda name: shared[name].get("built", 0))
    follower = next(name for name in shared if name != builder)
    assert shared[builder].get("built", 0) >= runs_of[builder] and shared[builder].get("published", 0) >= 1, shared
    assert shared[follower].get("built", 0) == 0 and shared[follower].get("behind", 0) <= 1, shared
    assert shared[follower].get("copied", 0) >= 1, shared


def _evaluate_at_once(workers: list[Worker]) -> dict[int, dict]:
    """The evaluation queued on every replica's worker at the same moment; their reports."""
    return _at_once(workers, "policies.tasks.evaluate_policies")


def _at_once(workers: list[Worker], func: str) -> dict[int, dict]:
    """`func` queued on every replica's worker at the same moment; their results."""
    reports: dict[int, dict] = {}

    def run(i: int) -> None:
        reports[i] = workers[i].run(func, timeout=180)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(workers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return reports


@pytest.mark.skipif(not FULL, reason="full size only (the suite's time budget): ./dev reliability")
def test_two_replicas_back_up_each_due_pvc_once_and_build_the_inventory_once_per_interval(sandbox, replicas):
    servers, workers = replicas
    for pvc in PVCS:
        seed.make_pvc(sandbox, NAMESPACE, pvc, backups=[{"state": "Completed", "created": OLD}], wait=False)
    seed.wait_bound(sandbox, [(NAMESPACE, pvc) for pvc in PVCS])
    faults.wait_mirrored(sandbox)
    status, body = http_json(f"{servers[0].url}/v1/policies", "POST", {"namespace": NAMESPACE, "interval_hours": 24})
    assert status in (200, 201), body
    _forget_leases(sandbox)  # an evaluator or inventory builder of another test may hold them
    workers.extend(Worker(server, hostname=f"replica-{name}") for server, name in zip(servers, "ab", strict=True))

    leaders = []
    for _ in range(ROUNDS):
        reports = _evaluate_at_once(workers)
        assert len(reports) == 2, "both replicas evaluated"
        assert [r["leader"] for r in reports.values()].count(True) == 1, reports
        leaders.append(next(i for i, r in reports.items() if r["leader"]))
        faults.wait_mirrored(sandbox)
    # The first leader started one backup per PVC; no later round of either replica another.
    for pvc in PVCS:
        wait_for(lambda pvc=pvc: _policy_backups(servers[1], pvc) and all(
            b["state"] == "Completed" for b in _policy_backups(servers[1], pvc)), 120,
            f"the policy backup of {pvc}")
        assert len(_policy_backups(servers[0], pvc)) == 1, _policy_backups(servers[0], pvc)
    assert len(set(leaders)) == 1, f"the Lease stays with its holder while it renews: {leaders}"

    # Each replica refreshes its inventory at start, then once per interval (60 s here): the
    # start-up refresh counts as the interval's, and no two refreshes of a replica come closer.
    runs_of = {}
    for server in servers:
        def watched(server=server):  # its scheduler has looked at the table, and refreshed REFRESHES times
            looked = any(r[0] == "soteria:policy-evaluation" for r in _tasks(server, "policies.tasks.evaluate_policies"))
            runs = _tasks(server, "policies.tasks.refresh_inventory")
            return looked and len(runs) >= REFRESHES and runs
        runs = wait_for(watched, 60 * REFRESHES + 120, f"{REFRESHES} inventory refreshes of {server.data_dir.name}",
                        interval=1)
        assert runs[0][0] == "soteria:inventory-refresh (at start)" and all(ok for _, _, ok in runs), runs
        assert {name for name, _, _ in runs[1:]} == {"soteria:inventory-refresh"}, runs
        gaps = [(b - a).total_seconds() for (_, a, _), (_, b, _) in zip(runs, runs[1:], strict=False)]
        assert all(gap >= 55 for gap in gaps), f"{server.data_dir.name} rebuilt its inventory after {gaps}s"
        runs_of[server.data_dir.name] = len(runs)
    shared = {server.data_dir.name: _shared(server) for server in servers}
    _one_builder(shared, runs_of)
    for pvc in PVCS:  # and the scheduled evaluations of both replicas backed nothing up again
        assert len(_policy_backups(servers[0], pvc)) == 1

    # And each replica's /metrics shows every PVC: the builder's from its build, the other's copied.
    for server in servers:
        samples = scrape(server).select("pvc_backup_count", namespace=NAMESPACE)
        assert sorted(dict(key)["pvc"] for key in samples) == PVCS, samples


def test_two_replicas_build_the_inventory_once_per_interval_and_both_show_every_pvc(sandbox, replicas):
    """The inventory part alone, at the suite's size, with the refresh queued on both workers at
    the same moment (as their schedules do, without waiting for them): the refresh Lease's
    holder builds and publishes, the other replica copies, and both /metrics carry every PVC."""
    servers, workers = replicas
    pvcs = [f"data-{i}" for i in range(size(2, 8))]
    for pvc in pvcs:
        seed.make_pvc(sandbox, INVENTORY_NAMESPACE, pvc, backups=[{"state": "Completed", "created": OLD}], wait=False)
    seed.wait_bound(sandbox, [(INVENTORY_NAMESPACE, pvc) for pvc in pvcs])
    faults.wait_mirrored(sandbox)
    _forget_leases(sandbox)
    workers.extend(Worker(server, hostname=f"replica-{name}") for server, name in zip(servers, "ab", strict=True))

    builders = set()
    for _ in range(size(2, 4)):
        reports = _at_once(workers, "policies.tasks.refresh_inventory")
        sources = sorted(r["source"] for r in reports.values())
        assert sources in (["built", "copied"], ["built", "current"]), reports
        builders |= {i for i, r in reports.items() if r["source"] == "built"}
    assert len(builders) == 1, f"the Lease stays with the builder while it renews: {builders}"
    builder = builders.pop()
    # Once the builder has published, the other replica's next refresh copies its rows.
    assert workers[builder].run("policies.tasks.refresh_inventory", timeout=120)["source"] == "built"
    copied = workers[1 - builder].run("policies.tasks.refresh_inventory", timeout=120)
    assert copied["source"] == "copied" and copied["pvcs"] >= len(pvcs), copied
    for server in servers:
        samples = scrape(server).select("pvc_backup_count", namespace=INVENTORY_NAMESPACE)
        assert sorted(dict(key)["pvc"] for key in samples) == pvcs, samples
