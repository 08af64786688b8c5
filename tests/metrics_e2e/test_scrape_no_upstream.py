"""A scrape never calls Kubernetes or Longhorn (docs/metrics.md): the per-PVC gauges come
from the inventory snapshot in the database.

Longhorn: the emulator counts every /v1 call it gets. Kubernetes: with the
real kube-apiserver stopped, /metrics still answers with the freshness gauges,
and a failed refresh keeps the previous values and is counted.
"""


from sandbox import cluster, faults
from tests.support.metrics import scrape
from tests.support.soteria import refresh_in_shell

SNAPSHOT_FAMILIES = ("pvc_backup_age_hours", "pvc_backup_health", "pvc_backup_last_success_timestamp_seconds",
                     "pvc_backup_count", "pvc_backup_stuck", "soteria_inventory_refresh_timestamp_seconds")


def _snapshot_series(samples) -> dict:
    return {key: value for key, value in samples.items() if key[0] in SNAPSHOT_FAMILIES}


def _upstream_calls(samples) -> float:
    """Soteria's own count of its calls to Kubernetes and Longhorn (all processes)."""
    return sum(samples.select("soteria_upstream_requests_total").values())


def test_scrapes_make_no_upstream_call(sandbox, soteria):
    server = soteria(workers=2)
    assert refresh_in_shell(server)["refreshed"] is True
    first = scrape(server)
    assert first.one("pvc_backup_health", namespace="ai", pvc="llm-cache") == 1

    faults.reset_calls(sandbox)
    scrapes = [scrape(server) for _ in range(5)]
    assert faults.calls(sandbox) == {}, "a scrape called Longhorn"
    for samples in scrapes:
        assert _upstream_calls(samples) == _upstream_calls(first)
        assert _snapshot_series(samples) == _snapshot_series(first)


def test_metrics_answer_with_kubernetes_down_and_a_failed_refresh_keeps_the_values(sandbox, soteria):
    server = soteria(workers=2)
    assert refresh_in_shell(server)["refreshed"] is True
    before = scrape(server)
    assert before.one("soteria_inventory_refresh_failures_total") == 0
    assert cluster.stop_service(sandbox, "kube-apiserver")
    try:
        for _ in range(5):
            samples = scrape(server)
            assert _snapshot_series(samples) == _snapshot_series(before)
            assert _upstream_calls(samples) == _upstream_calls(before)

        # The worker's refresh fails: counted, and the previous snapshot stays published.
        assert refresh_in_shell(server)["refreshed"] is False
        faults.reset_calls(sandbox)
        after = scrape(server)
        assert faults.calls(sandbox) == {}, "a scrape called Longhorn"
        assert after.one("soteria_inventory_refresh_failures_total") == 1
        assert _snapshot_series(after) == _snapshot_series(before)
        assert after.one("pvc_backup_health", namespace="ai", pvc="model-store") == 0
        assert after.one("pvc_backup_count", namespace="ai", pvc="llm-cache") >= 14
        failures = after.select("soteria_upstream_requests_total", system="kubernetes")
        assert any(value > 0 for key, value in failures.items() if ("outcome", "ok") not in key), failures
    finally:
        cluster.start_service(sandbox, "kube-apiserver")

    # Kubernetes is back: the next refresh publishes a new snapshot.
    assert refresh_in_shell(server)["refreshed"] is True
    again = scrape(server)
    assert again.one("soteria_inventory_refresh_timestamp_seconds") > before.one(
        "soteria_inventory_refresh_timestamp_seconds")
    assert again.one("soteria_inventory_refresh_failures_total") == 1
