"""POST /v1/restores/namespace: plan first (conflicts included), then restore what was planned."""

import pytest

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
    assert body["totals"] == {"total": 4, "planned": 1, "restored": 0, "skipped": 3, "failed": 0}
    assert world.mutating_calls == {}


def test_execution_restores_what_the_plan_said(client, world):
    plan = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-",
                          "dry_run": True}).json()
    done = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "r-"}).json()
    planned = {r["pvc"]: r["backup"] for r in plan["results"] if r["status"] == "planned"}
    restored = {r["pvc"]: r["backup"] for r in done["results"] if r["status"] == "restored"}
    assert planned == restored == {"a": "backup-pvc-ai-a-0"}
    assert ("ai-restore", "r-a") in world.pvcs and ("ai-restore", "r-b") in world.pvcs


def test_target_names_are_validated(client, world):
    body = _post(client, {"namespace": "ai", "target_namespace": "ai-restore", "target_prefix": "Bad-",
                          "dry_run": True}).json()
    assert {r["error"] for r in body["results"]} >= {"invalid_target_name"}


def test_same_namespace_needs_a_prefix_and_namespaces_must_exist(client, world):
    assert _post(client, {"namespace": "ai", "dry_run": True}).json()["field"] == "target_prefix"
    assert _post(client, {"namespace": "ai", "target_namespace": "nope", "target_prefix": "x-"}).status_code == 404
