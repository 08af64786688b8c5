"""GET /v1/inventory: the contract's shape, health reasons, and a constant call cost."""

from datetime import timedelta

import pytest

from backups import types as t
from backups.services.inventory import assess
from backups.types import BackupFacts
from tests.support.fake_cluster import NOW, FakeCluster

pytestmark = pytest.mark.django_db

FIELDS = {"namespace", "pvc", "volume", "storage_class", "capacity", "driver", "last_backup_at",
          "last_backup_age_hours", "backup_count", "healthy", "health_reason"}
# Beyond the contract (docs/drills.md): what restore drills proved.
EXTENSIONS = {"last_verified_at", "verify_result"}


def _rows(client):
    response = client.get("/v1/inventory")
    assert response.status_code == 200, response.content
    return response.json(), {(r["namespace"], r["pvc"]): r for ns in response.json()["namespaces"] for r in ns["pvcs"]}


def test_groups_by_namespace_sorted_with_exactly_the_contracts_fields(client, cluster, frozen):
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    cluster.add_pvc("ai", "model-store", backups=[("Completed", 30, None)])
    cluster.add_pvc("ai", "llm-cache", size="50Gi", backups=[("Completed", 0.58, None), ("Completed", 5, None)])
    body, rows = _rows(client)
    assert body["generated_at"] == "2026-04-12T15:30:00Z"
    assert [ns["name"] for ns in body["namespaces"]] == ["ai", "media"]
    assert [p["pvc"] for p in body["namespaces"][0]["pvcs"]] == ["llm-cache", "model-store"]
    row = rows[("ai", "llm-cache")]
    assert set(row) == FIELDS | EXTENSIONS
    assert row["last_verified_at"] is None and row["verify_result"] is None
    assert row == {"namespace": "ai", "pvc": "llm-cache", "volume": "pvc-ai-llm-cache", "storage_class": "longhorn",
                   "capacity": "50Gi", "driver": "longhorn", "last_backup_at": "2026-04-12T14:55:12Z",
                   "last_backup_age_hours": 0.58, "backup_count": 2, "healthy": True, "health_reason": "fresh",
                   "last_verified_at": None, "verify_result": None}


def test_every_health_reason_from_the_cluster_state(client, cluster, frozen, settings):
    settings.SOTERIA_BACKUP_MAX_AGE_HOURS = 24
    cluster.add_pvc("a", "fresh", backups=[("Completed", 1, None)])
    cluster.add_pvc("a", "stale", backups=[("Completed", 30, None)])
    cluster.add_pvc("a", "never")
    cluster.add_pvc("a", "failed", backups=[("Completed", 30, None),
                                            ("Error", None, "soteria-backup-a-failed-20260412-140000")])
    cluster.add_pvc("a", "running", backups=[("Completed", 2, None),
                                             ("InProgress", None, "soteria-backup-a-running-20260412-152500")])
    cluster.add_pvc("a", "stuck", backups=[("Completed", 2, None),
                                           ("InProgress", None, "soteria-backup-a-stuck-20260412-010000")])
    cluster.add_pvc("a", "pending", bound=False)
    cluster.add_pvc("a", "local", storage_class="local-path", csi_driver=None)
    volume = cluster.add_pvc("a", "gone")
    del cluster.volumes[volume]
    _, rows = _rows(client)
    reasons = {pvc: (r["healthy"], r["health_reason"]) for (_, pvc), r in rows.items()}
    assert reasons == {
        "fresh": (True, t.FRESH), "stale": (False, t.STALE), "never": (False, t.NEVER_BACKED_UP),
        "failed": (False, t.LAST_BACKUP_FAILED), "running": (True, t.BACKUP_IN_PROGRESS),
        "stuck": (True, t.BACKUP_STUCK), "pending": (False, t.NOT_BOUND), "local": (False, t.UNSUPPORTED_DRIVER),
        "gone": (False, t.VOLUME_MISSING),
    }
    assert rows[("a", "never")]["last_backup_at"] is None and rows[("a", "never")]["last_backup_age_hours"] is None
    assert rows[("a", "never")]["backup_count"] == 0
    assert rows[("a", "local")]["driver"] == "none" and rows[("a", "pending")]["driver"] == "longhorn"
    assert rows[("a", "pending")]["capacity"] == "10Gi"


def test_only_completed_backups_count(client, cluster, frozen):
    cluster.add_pvc("a", "p", backups=[("Completed", 3, None), ("Error", None, None), ("Completed", 4, None)])
    _, rows = _rows(client)
    assert rows[("a", "p")]["backup_count"] == 2


def test_an_old_failure_before_a_success_is_not_the_last_backup(client, cluster, frozen):
    cluster.add_pvc("a", "p", backups=[("Error", None, "soteria-backup-a-p-20260410-000000"), ("Completed", 3, None)])
    _, rows = _rows(client)
    assert rows[("a", "p")]["health_reason"] == t.FRESH


def test_namespace_filter_keeps_the_shape(client, cluster, frozen):
    cluster.add_pvc("a", "p")
    cluster.add_pvc("b", "q")
    body = client.get("/v1/inventory?namespace=b").json()
    assert [ns["name"] for ns in body["namespaces"]] == ["b"]
    assert client.get("/v1/inventory?namespace=Bad_Name").status_code == 400


def _populate(cluster: FakeCluster, count: int) -> None:
    for i in range(count):
        cluster.add_pvc(f"ns-{i % 7}", f"pvc-{i}", backups=[("Completed", h, None) for h in range(i % 5)])


def test_inventory_cost_is_the_same_at_100_1000_and_10000_pvcs(client, monkeypatch, frozen):
    costs = []
    for count in (100, 1_000, 10_000):
        fake = FakeCluster().install(monkeypatch)
        _populate(fake, count)
        _, rows = _rows(client)
        assert len(rows) == count
        costs.append(dict(fake.calls))
    assert costs[0] == costs[1] == costs[2]
    # PVCs, PVs, classes, Longhorn's volumes and backup volumes, the drill records.
    assert sum(costs[0].values()) == 6


@pytest.mark.parametrize("facts,expected", [
    (BackupFacts(), (False, t.NEVER_BACKED_UP)),
    (BackupFacts(last_success_at=NOW - timedelta(hours=23, minutes=59)), (True, t.FRESH)),
    (BackupFacts(last_success_at=NOW - timedelta(hours=24)), (False, t.STALE)),
    (BackupFacts(in_progress=(("b", None),)), (False, t.BACKUP_IN_PROGRESS)),
    (BackupFacts(in_progress=(("b", NOW - timedelta(hours=7)),)), (False, t.BACKUP_STUCK)),
    (BackupFacts(last_failure_is_newest=True), (False, t.LAST_BACKUP_FAILED)),
])
def test_assess_is_a_pure_rule(facts, expected):
    assert assess(facts, NOW, max_age_hours=24, stuck_after_hours=6) == expected
