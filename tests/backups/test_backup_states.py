"""Which Longhorn backup states run and which failed: Unknown is final, a blank state runs
only for a while (backups pulled from the store keep it until synced)."""

from datetime import timedelta

import pytest

from backups import types as t
from backups.drivers.longhorn import NEW_STATE_LIMIT, backup_facts
from tests.support.fake_cluster import NOW, FakeCluster

pytestmark = pytest.mark.django_db
OLD_SNAPSHOT = "soteria-backup-ai-llm-cache-20260412-140000"  # 90 minutes before NOW


def _post(client, body):
    return client.post("/v1/backup", body, content_type="application/json")


def _row(client, namespace, pvc):
    body = client.get("/v1/inventory").json()
    return next(r for ns in body["namespaces"] for r in ns["pvcs"] if (ns["name"], r["pvc"]) == (namespace, pvc))


def test_an_unknown_backup_does_not_block_a_new_one(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, None), ("Unknown", None, OLD_SNAPSHOT)])
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 200, response.content
    assert cluster.calls["backup_snapshot"] == 1


def test_an_unknown_backup_shows_as_the_last_backup_failed_in_the_inventory(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, None), ("Unknown", None, OLD_SNAPSHOT)])
    row = _row(client, "ai", "llm-cache")
    assert row["health_reason"] == t.LAST_BACKUP_FAILED


def test_an_unknown_backup_is_listed_with_its_state_in_v1_backups(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, None), ("Unknown", 1, OLD_SNAPSHOT)])
    body = client.get("/v1/backups", {"namespace": "ai", "pvc": "llm-cache"}).json()
    assert [b["state"] for b in body["backups"]] == ["Unknown", "Completed"]


@pytest.mark.parametrize("state", ["Pending", "InProgress"])
def test_pending_and_in_progress_block_a_new_backup(client, cluster, frozen, state):
    cluster.add_pvc("ai", "llm-cache", backups=[(state, None, OLD_SNAPSHOT)])
    response = _post(client, {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 409
    assert response.json()["error"] == "backup_in_progress"


def test_a_new_blank_state_backup_blocks_but_an_old_one_does_not(client, cluster, frozen):
    recent = "soteria-backup-ai-llm-cache-20260412-152500"  # five minutes ago
    cluster.add_pvc("ai", "llm-cache", backups=[("", None, recent)])
    assert _post(client, {"namespace": "ai", "pvc": "llm-cache"}).status_code == 409
    cluster.add_pvc("ai", "old", backups=[("", None, "soteria-backup-ai-old-20260412-140000")])
    assert _post(client, {"namespace": "ai", "pvc": "old"}).status_code == 200


def test_a_blank_state_backup_of_another_tool_runs_only_for_the_limit_after_first_seen(cluster):
    cluster.add_volume("v", backups=[("", None, "snap-from-the-store")])
    volume = cluster.volumes["v"]
    assert backup_facts(volume, None, NOW).in_progress  # first seen now
    later = NOW + NEW_STATE_LIMIT + timedelta(seconds=1)
    assert backup_facts(volume, None, later).in_progress == ()


def test_unknown_and_error_are_failures_pending_is_not(cluster):
    cluster.add_volume("v", backups=[("Unknown", None, "soteria-backup-ns-p-20260412-150000")])
    facts = backup_facts(cluster.volumes["v"], None, NOW)
    assert facts.last_failure_is_newest and "Unknown" in facts.last_failure_error
    assert facts.in_progress == ()
    other = FakeCluster()
    other.add_volume("w", backups=[("Pending", None, "soteria-backup-ns-p-20260412-150000")])
    facts = backup_facts(other.volumes["w"], None, NOW)
    assert not facts.last_failure_is_newest and len(facts.in_progress) == 1
