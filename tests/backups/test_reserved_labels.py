"""Soteria's own label keys (`policy`, `soteria.io/...`) are never taken from a user's tags,
so a hand-made backup cannot pass for a policy's and push its backups out of retention."""

import pytest
import time_machine

from backups.services import backup as backup_service
from policies import evaluate, services
from tests.support.fake_cluster import NOW
from tests.support.http import post

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]

RESERVED = ["policy=ai.db", "policy", "policy = ai", "soteria.io/source=ai", "soteria.io/restored",
            "backup.soteria.io/owner=me"]


@pytest.mark.parametrize("tag", RESERVED)
def test_backup_refuses_soteria_label_keys_naming_the_tag(client, cluster, tag):
    cluster.add_pvc("ai", "db")
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "db", "tags": ["reason=upgrade", tag]})
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_input" and body["field"] == "tags"
    assert f"tags[1] {tag!r}" in body["detail"] and "Soteria itself" in body["detail"]
    assert sum(cluster.calls.values()) == 0


@pytest.mark.parametrize("tag", RESERVED)
def test_namespace_backup_refuses_soteria_label_keys(client, cluster, tag):
    cluster.add_pvc("ai", "db")
    response = post(client, "/v1/backup/namespace", {"namespace": "ai", "tags": [tag]})
    assert response.status_code == 400 and response.json()["field"] == "tags"
    assert repr(tag) in response.json()["detail"]
    assert cluster.mutating_calls == {}


@pytest.mark.parametrize("tag", ["policy-note=x", "mypolicy", "example.org/policy=x", "notsoteria.io/x=y"])
def test_keys_that_only_look_alike_are_accepted(client, cluster, tag):
    cluster.add_pvc("ai", "db")
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "db", "tags": [tag], "dry_run": True})
    assert response.status_code == 200, response.content


def test_console_backup_form_refuses_a_policy_tag(client, cluster):
    cluster.add_pvc("ai", "db")
    response = client.post("/pvc/ai/db/backup", {"tags": "reason=upgrade, policy=ai.db"}, follow=True)
    assert response.status_code == 200
    assert "Backup refused" in response.content.decode() and "policy=ai.db" in response.content.decode()
    assert cluster.mutating_calls == {}


@pytest.mark.parametrize("tag", ["policy=ai", "soteria.io/owner=me"])
def test_policy_api_refuses_soteria_label_keys_and_writes_nothing(client, cluster, tag):
    response = post(client, "/v1/policies", {"namespace": "ai", "interval_hours": 6, "tags": ["tier=gold", tag]})
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "tags" and repr(tag) in response.json()["detail"]
    assert cluster.secrets == {}


def test_console_policy_form_refuses_soteria_label_keys(client, cluster):
    response = client.post("/policies/save", {"namespace": "ai", "interval_hours": "6", "enabled": "on",
                                              "tags": "tier=gold, soteria.io/owner=me"}, follow=True)
    assert "Policy not saved" in response.content.decode()
    assert cluster.secrets == {}


def test_policy_backups_carry_the_policy_label_beside_the_policys_tags(cluster):
    cluster.add_pvc("ai", "db", backups=[("Completed", 30, None)])
    with time_machine.travel(NOW, tick=False):
        services.save_policy("ai", "db", 6, True, 3, ["tier=gold"], "tester")
        report = evaluate.evaluate(now=NOW, holder="replica-a")
    assert report.started == {"ai/db": "soteria-backup-ai-db-20260412-153000"}
    assert cluster.last_backup_call["labels"] == {"tier": "gold", "policy": "ai.db"}


def test_the_backup_service_labels_a_policy_backup_only_through_policy_id(cluster):
    cluster.add_pvc("ai", "db")
    with time_machine.travel(NOW, tick=False):
        result = backup_service.backup_pvc("ai", "db", ["tier=gold"], "policy:ai.db", policy_id="ai.db")
    assert result.labels == {"tier": "gold", "policy": "ai.db"}
    assert cluster.last_backup_call["labels"] == {"tier": "gold", "policy": "ai.db"}
