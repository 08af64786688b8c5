"""/metrics: freshness from the snapshot (no upstream call at scrape), counters always present."""

import pytest
import time_machine
from prometheus_client.parser import text_string_to_metric_families

from policies.services import refresh_inventory
from soteria_site.core.errors import UpstreamUnavailable
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]


def scrape(client) -> dict:
    response = client.get("/metrics")
    assert response.status_code == 200
    samples = {}
    for family in text_string_to_metric_families(response.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def pvc(namespace, name, volume, driver="longhorn"):
    return tuple(sorted({"namespace": namespace, "pvc": name, "volume": volume, "driver": driver}.items()))


@pytest.fixture
def refreshed(cluster):
    from policies import services

    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None), ("Completed", 26, None)])
    cluster.add_pvc("ai", "stale", backups=[("Completed", 30, None)])
    cluster.add_pvc("ai", "never")
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.add_pvc("ai", "local", storage_class="local-path", csi_driver=None)
    services.save_policy("ai", "llm-cache", 6, True, None, [], "t")
    with time_machine.travel(NOW, tick=False):
        assert refresh_inventory(now=NOW) is not None
    return cluster


def test_freshness_gauges_per_pvc(client, refreshed):
    s = scrape(client)
    fresh = pvc("ai", "llm-cache", "pvc-ai-llm-cache")
    assert s[("pvc_backup_age_hours", fresh)] == 2.0
    assert s[("pvc_backup_health", fresh)] == 1
    assert s[("pvc_backup_count", fresh)] == 2
    assert s[("pvc_backup_last_success_timestamp_seconds", fresh)] == NOW.timestamp() - 2 * 3600
    assert s[("pvc_backup_expected_interval_seconds", fresh)] == 6 * 3600
    assert s[("pvc_backup_health", pvc("ai", "stale", "pvc-ai-stale"))] == 0
    assert s[("soteria_inventory_refresh_timestamp_seconds", ())] == NOW.timestamp()


def test_a_never_backed_up_pvc_appears_without_a_bogus_age(client, refreshed):
    s = scrape(client)
    never = pvc("ai", "never", "pvc-ai-never")
    assert s[("pvc_backup_health", never)] == 0 and s[("pvc_backup_count", never)] == 0
    assert ("pvc_backup_age_hours", never) not in s
    assert ("pvc_backup_last_success_timestamp_seconds", never) not in s


def test_pvcs_without_policy_are_counted_per_namespace(client, refreshed):
    assert scrape(client)[("soteria_pvcs_without_policy", (("namespace", "ai"),))] == 2


def test_unbound_and_unsupported_pvcs_are_not_exported(client, refreshed):
    names = {dict(labels).get("pvc") for (name, labels) in scrape(client) if name == "pvc_backup_health"}
    assert names == {"llm-cache", "stale", "never"}


def test_a_scrape_makes_no_upstream_call(client, refreshed):
    refreshed.calls.clear()
    scrape(client)
    assert sum(refreshed.calls.values()) == 0


def test_a_failed_refresh_keeps_the_previous_values_and_is_counted(client, refreshed):
    before = scrape(client)[("soteria_inventory_refresh_failures_total", ())]
    refreshed.fail["list_volumes"] = UpstreamUnavailable("longhorn", "down")
    assert refresh_inventory() is None
    s = scrape(client)
    assert s[("soteria_inventory_refresh_failures_total", ())] == before + 1
    assert s[("pvc_backup_health", pvc("ai", "llm-cache", "pvc-ai-llm-cache"))] == 1


def test_every_contract_family_is_present_before_anything_happened(client, cluster):
    text = client.get("/metrics").content.decode()
    for family in ("soteria_backup_requests_total", "soteria_restore_requests_total", "soteria_policy_backups_total",
                   "soteria_namespace_backup_requests_total", "soteria_namespace_restore_requests_total",
                   "soteria_authz_denials_total", "soteria_inventory_refresh_failures_total",
                   "soteria_inventory_refresh_timestamp_seconds", "pvc_backup_age_hours", "pvc_backup_health",
                   "pvc_backup_last_success_timestamp_seconds", "pvc_backup_count"):
        assert f"# TYPE {family.removesuffix('_total')} " in text or f"# TYPE {family} " in text, family


def test_django_prometheus_request_metrics_remain(client, cluster):
    client.get("/healthz")
    assert "django_http_requests_total_by_method_total" in client.get("/metrics").content.decode()
