"""POST /v1/restores/namespace: plan first (conflicts included), then restore what was planned."""

import pytest

from tests.support.fake_cluster import track_concurrency

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, body):
    return client.post("/v1/restores/namespace", body, content_type="application/json")


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "a", backups=[("Completed", 3, None)])
    cluster.add_pvc("ai", "b", backups=[("Completed", 3, None)])
    cluster.add_pvc("ai", "never")
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.add_pvc("ai-restore", "r-b")  # a conflict, found in planning
    return cluster


def test_dry_run_lists_every_pvc_with_the_backup_chosen_and_conflicts(client, world):
    body = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-",
                          "snapshot": "", "dry_run": True}).json()
    rows = {r["pvc"]: r for r in body["results"]}
    assert {p: (r["status"], r["error"]) for p, r in rows.items()} == {
        "a": ("planned", ""), "b": ("skipped", "target_exists"), "never": ("skipped", "no_backup"),
        "pending": ("skipped", "pvc_not_bound")}
    assert rows["a"]["target_pvc"] == "r-a" and rows["a"]["backup"] == "backup-pvc-ai-a-0"
    assert rows["a"]["backup_created"].endswith("Z")
    assert body["totals"] == {"total": 4, "planned": 1, "queued": 0, "restored": 0, "skipped": 3, "failed": 0}
    assert world.mutating_calls == {}


def test_execution_queues_what_the_plan_said_and_the_worker_restores_it(client, world):
    plan = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-",
                          "dry_run": True}).json()
    done = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"}).json()
    planned = {r["pvc"]: r["backup"] for r in plan["results"] if r["status"] == "planned"}
    queued = {r["pvc"]: r["backup"] for r in done["results"] if r["status"] == "queued"}
    assert planned == queued == {"a": "backup-pvc-ai-a-0"}
    assert done["totals"] == {"total": 4, "planned": 0, "queued": 1, "restored": 0, "skipped": 3, "failed": 0}
    assert ("ai-restore", "r-a") in world.pvcs and ("ai-restore", "r-b") in world.pvcs
    [row] = client.get("/v1/restores?namespace=ai-restore").json()["restores"]
    assert (row["pvc"], row["source"], row["backup"]) == ("r-a", "ai/a", "backup-pvc-ai-a-0")


@pytest.fixture
def held_queue(monkeypatch):
    """The worker has not run yet: what was queued, to run by hand."""
    from backups.services import restore

    queued = []
    monkeypatch.setattr(restore, "_enqueue", lambda *task: queued.append(task))
    return queued


def test_the_answer_comes_before_any_restore_and_the_worker_then_shows_its_progress(client, world, held_queue):
    from backups import tasks

    done = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"}).json()
    assert {r["pvc"]: r["status"] for r in done["results"]}["a"] == "queued"
    assert next(r for r in done["results"] if r["pvc"] == "a")["volume"] == ""  # not created yet
    # Nothing is created yet but the batch's record, which a killed worker's batch is carried on from.
    assert world.mutating_calls == {"create_lease": 1} and len(held_queue) == 1
    assert client.get("/v1/restores?namespace=ai-restore").json()["restores"] == []
    outcome = tasks.restore_planned(*held_queue[0])
    assert outcome["restored"] == ["ai-restore/r-a"] and outcome["failed"] == {}
    [row] = client.get("/v1/restores?namespace=ai-restore").json()["restores"]
    assert row["pvc"] == "r-a" and row["state"] in ("restoring", "done")


def test_a_target_taken_after_planning_fails_in_the_worker_and_the_others_go_on(client, world, held_queue):
    from backups import tasks

    world.add_pvc("ai", "c", backups=[("Completed", 3, None)])
    _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"})
    world.add_pvc("ai-restore", "r-a")  # someone else made it in between
    outcome = tasks.restore_planned(*held_queue[0])
    assert outcome["restored"] == ["ai-restore/r-c"]
    assert list(outcome["failed"]) == ["ai-restore/r-a"] and "already exists" in outcome["failed"]["ai-restore/r-a"]


def test_a_queue_that_cannot_be_written_fails_each_planned_pvc(client, world, monkeypatch):
    from backups.services import restore

    def down(*task):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(restore, "_enqueue", down)
    done = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"}).json()
    row = next(r for r in done["results"] if r["pvc"] == "a")
    assert (row["status"], row["error"]) == ("failed", "not_queued") and "database is locked" in row["detail"]
    # The batch's record was written and given back: nothing else was made, nothing is left.
    assert world.mutating_calls == {"create_lease": 1, "delete_lease": 1} and world.leases == {}


def test_the_worker_restores_at_most_the_concurrency_cap_at_once(client, world, settings, monkeypatch):
    from backups.clients import longhorn

    settings.SOTERIA_NAMESPACE_CONCURRENCY = 2
    for i in range(7):
        world.add_pvc("ai", f"more-{i}", backups=[("Completed", 3, None)])
    peak = track_concurrency(monkeypatch, longhorn, "create_volume", together=2)
    done = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"}).json()
    assert done["totals"]["queued"] == 8
    assert peak() == 2 and len([k for k in world.pvcs if k[0] == "ai-restore"]) == 9  # r-b was there


def test_target_names_are_validated(client, world):
    body = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "Bad-",
                          "dry_run": True}).json()
    assert {r["error"] for r in body["results"]} >= {"invalid_target_name"}


def test_same_namespace_needs_a_prefix_and_namespaces_must_exist(client, world):
    assert _post(client, {"namespace": "ai", "dry_run": True}).json()["field"] == "target_prefix"
    assert _post(client, {"namespace": "ai", "target_namespace": "nope", "target_prefix": "x-"}).status_code == 404
