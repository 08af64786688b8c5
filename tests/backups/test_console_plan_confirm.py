"""The console's mutations: the first send shows the plan (a dry run through the API's services)
and changes nothing; only a confirmed second send, carrying the plan's inputs and digest, acts;
a plan that changed in between is shown again and nothing runs."""

import pytest

from policies import services as policy_services

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", size="50Gi", backups=[("Completed", 30, None), ("Completed", 5, None)])
    cluster.add_pvc("ai", "notebooks")
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.namespaces.add("ai-restore")
    return cluster


def _confirm(client, path, plan, **inputs):
    """The second send, as the plan page's form makes it: the inputs again, the digest, confirm."""
    return client.post(path, {**inputs, "confirm": "on", "digest": plan.context["digest"]})


RESTORE = {"snapshot": "latest", "target_namespace": "ai", "target_pvc": "llm-cache-copy"}


def test_restore_shows_the_plan_and_creates_nothing(client, world):
    plan = client.post("/pvc/ai/llm-cache/restore", RESTORE)
    assert plan.status_code == 200
    page = plan.content.decode()
    assert 'data-plan="restore"' in page and "backup-pvc-ai-llm-cache-1" in page  # the newest completed one
    assert "ai/llm-cache-copy" in page and "50Gi" in page
    assert world.mutating_calls == {}
    # The confirmation carries every input again, and the digest.
    for name, value in RESTORE.items():
        assert f'name="{name}" value="{value}"' in page
    assert f'name="digest" value="{plan.context["digest"]}"' in page


def test_a_confirmed_restore_creates_the_claim(client, world):
    plan = client.post("/pvc/ai/llm-cache/restore", RESTORE)
    done = _confirm(client, "/pvc/ai/llm-cache/restore", plan, **RESTORE)
    assert done.status_code == 200 and b"data-restore-started" in done.content
    assert ("ai", "llm-cache-copy") in world.pvcs
    assert world.mutating_calls["create_volume"] == 1


def test_a_confirmation_whose_plan_changed_restores_nothing_and_shows_the_new_plan(client, world):
    plan = client.post("/pvc/ai/llm-cache/restore", RESTORE)
    world.add_volume("pvc-ai-llm-cache", [("Completed", 30, None), ("Completed", 5, None), ("Completed", 1, None)],
                     size="53687091200")  # a newer backup: "latest" is another one now
    again = _confirm(client, "/pvc/ai/llm-cache/restore", plan, **RESTORE)
    assert again.status_code == 409
    assert "the plan changed" in again.content.decode()
    assert "backup-pvc-ai-llm-cache-2" in again.content.decode()  # the new plan
    assert again.context["digest"] != plan.context["digest"]
    assert world.mutating_calls == {}


def test_a_confirmation_with_a_forged_digest_restores_nothing(client, world):
    again = client.post("/pvc/ai/llm-cache/restore", {**RESTORE, "confirm": "on", "digest": "0" * 32})
    assert again.status_code == 409 and world.mutating_calls == {}


def test_a_target_created_between_plan_and_confirmation_is_refused_with_a_free_name(client, world):
    plan = client.post("/pvc/ai/llm-cache/restore", RESTORE)
    world.add_pvc("ai", "llm-cache-copy")
    world.calls.clear()
    again = _confirm(client, "/pvc/ai/llm-cache/restore", plan, **RESTORE)
    page = again.content.decode()
    assert again.status_code == 409
    assert "target PVC ai/llm-cache-copy already exists" in page
    assert 'data-free-name' in page and "llm-cache-restore-" in page
    assert world.mutating_calls == {}


def test_backup_shows_the_plan_then_starts_only_when_confirmed(client, world):
    plan = client.post("/pvc/ai/llm-cache/backup", {"tags": "reason=upgrade"})
    assert plan.status_code == 200 and b'data-plan="backup"' in plan.content
    assert b"reason=upgrade" in plan.content and world.mutating_calls == {}
    done = _confirm(client, "/pvc/ai/llm-cache/backup", plan, tags="reason=upgrade")
    assert done.status_code == 302
    assert world.mutating_calls["backup_snapshot"] == 1


def test_a_backup_confirmed_with_other_tags_than_planned_starts_nothing(client, world):
    plan = client.post("/pvc/ai/llm-cache/backup", {"tags": "reason=upgrade"})
    again = _confirm(client, "/pvc/ai/llm-cache/backup", plan, tags="reason=other")
    assert again.status_code == 409 and world.mutating_calls == {}


def test_namespace_backup_plans_each_pvc_and_backs_up_only_when_confirmed(client, world):
    plan = client.get("/namespace/ai/backup")
    assert plan.status_code == 200
    statuses = {o.pvc: o.status for o in plan.context["plan"].results}
    assert statuses == {"llm-cache": "planned", "notebooks": "planned", "pending": "skipped"}
    assert world.mutating_calls == {}
    assert client.post("/namespace/ai/backup", {"tags": ""}).status_code == 200  # a plan again
    assert world.mutating_calls == {}
    done = _confirm(client, "/namespace/ai/backup", plan, tags="")
    assert done.status_code == 302
    assert world.mutating_calls["backup_snapshot"] == 2


def test_namespace_restore_plans_then_queues_only_when_confirmed(client, world):
    inputs = {"target_namespace": "ai-restore", "target_prefix": "r-"}
    plan = client.post("/namespace/ai/restore", inputs)
    assert plan.status_code == 200
    assert {o.pvc: o.status for o in plan.context["plan"].results}["llm-cache"] == "planned"
    assert world.mutating_calls == {}
    world.add_pvc("ai-restore", "r-llm-cache")  # a conflict appears
    world.calls.clear()
    changed = _confirm(client, "/namespace/ai/restore", plan, **inputs)
    assert changed.status_code == 409 and world.mutating_calls == {}
    assert {o.pvc: o.error for o in changed.context["plan"].results}["llm-cache"] == "target_exists"
    del world.pvcs[("ai-restore", "r-llm-cache")]
    plan = client.post("/namespace/ai/restore", inputs)
    done = _confirm(client, "/namespace/ai/restore", plan, **inputs)
    assert done.status_code == 200 and done.context["result"].totals["queued"] == 1
    assert ("ai-restore", "r-llm-cache") in world.pvcs  # queues run synchronously in tests


def test_policy_delete_shows_the_policy_and_deletes_only_when_confirmed(client, world):
    policy_services.save_policy("ai", "", 6, True, None, [], "test")
    plan = client.post("/policies/ai/delete")
    assert plan.status_code == 200 and b'data-plan="policy-delete"' in plan.content
    assert [p.id for p in policy_services.list_policies()] == ["ai"]
    policy_services.save_policy("ai", "", 12, True, None, [], "someone else")  # changed meanwhile
    changed = _confirm(client, "/policies/ai/delete", plan)
    assert changed.status_code == 409 and [p.id for p in policy_services.list_policies()] == ["ai"]
    done = _confirm(client, "/policies/ai/delete", changed)
    assert done.status_code == 302 and policy_services.list_policies() == []
