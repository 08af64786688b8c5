"""/metrics renders the per-PVC gauges once per change of the cached rows and serves them
beside the live counters: the same answer one registry would give, never a stale one."""

from datetime import timedelta

import pytest
import time_machine
from prometheus_client import CollectorRegistry, generate_latest

from backups import metrics_export
from backups.services import inventory_cache
from policies.services import refresh_inventory
from tests.metrics.test_freshness_metrics import pvc, scrape
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]


def _refresh(at=NOW):
    with time_machine.travel(at, tick=False):
        assert refresh_inventory(now=at) is not None


@pytest.fixture
def renders(monkeypatch):
    """How many times the per-PVC families have been rendered."""
    count = {"n": 0}
    collect = metrics_export.SnapshotCollector.collect

    def counted(self):
        count["n"] += 1
        yield from collect(self)

    monkeypatch.setattr(metrics_export.SnapshotCollector, "collect", counted)
    return count


@pytest.fixture
def refreshed(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    cluster.add_pvc("ml", "weights", backups=[("Completed", 30, None)])
    _refresh()
    return cluster


def test_the_answer_is_the_one_a_single_registry_renders(client, refreshed):
    text = client.get("/metrics").content.decode()
    registry = CollectorRegistry(auto_describe=False)
    registry.register(metrics_export.SnapshotCollector())
    alone = generate_latest(registry).decode()
    assert alone in text  # the per-PVC families, byte for byte
    types = [line.split()[2] for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types)), "a family is rendered twice"
    assert "soteria_backup_requests_total" in text  # the live counters beside them


def test_rows_are_rendered_once_until_they_change(client, refreshed, renders):
    for _ in range(3):
        scrape(client)
    assert renders["n"] == 1
    inventory_cache.record_backup("ai", "llm-cache", "soteria-backup-x")
    scrape(client)
    scrape(client)
    assert renders["n"] == 2
    _refresh()
    scrape(client)
    assert renders["n"] == 3


def test_a_new_refresh_is_served_at_once(client, refreshed):
    weights = pvc("ml", "weights", "pvc-ml-weights")
    assert scrape(client)[("pvc_backup_count", weights)] == 1
    refreshed.add_pvc("ml", "weights", backups=[("Completed", 30, None), ("Completed", 1, None)])
    _refresh(NOW + timedelta(minutes=5))
    samples = scrape(client)
    assert samples[("pvc_backup_count", weights)] == 2
    assert samples[("soteria_inventory_refresh_timestamp_seconds", ())] == (NOW + timedelta(minutes=5)).timestamp()


def test_before_any_refresh_the_families_are_there_and_empty(client, cluster, renders):
    text = client.get("/metrics").content.decode()
    assert "# TYPE pvc_backup_health gauge" in text and "pvc_backup_health{" not in text
