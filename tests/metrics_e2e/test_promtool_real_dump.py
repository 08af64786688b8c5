"""`promtool check metrics` on a real /metrics dump of real gunicorn after real activity:
only the two findings docs/metrics.md documents (the contract's names are kept)."""

import shutil
import subprocess

from tests.support.http import http, http_json
from tests.support.metrics import POLICY_SECRET, scrape
from tests.support.soteria import refresh_in_shell

# docs/metrics.md, "Known promtool check metrics findings".
KNOWN = {"pvc_backup_age_hours", "pvc_backup_count"}


def _lint(dump: bytes) -> list[str]:
    result = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=dump, capture_output=True,
                            timeout=60)
    return [line for line in (result.stderr + result.stdout).decode().splitlines() if line.strip()]


def test_promtool_finds_only_the_two_documented_names_in_a_real_dump(sandbox, soteria):
    # A policy Secret of this test's own: the policy below must reach nobody's worker.
    server = soteria(workers=2, SOTERIA_POLICY_SECRET_NAME=f"{POLICY_SECRET}-lint")
    url = server.url
    status, policy = http_json(f"{url}/v1/policies", "POST", {"namespace": "ai", "pvc": "llm-cache",
                                                              "interval_hours": 6})
    assert status in (200, 201), policy
    try:
        assert refresh_in_shell(server)["refreshed"] is True
        activity = [
            (200, "POST", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}),
            (422, "POST", "/v1/backup", {"namespace": "media", "pvc": "transcode-cache"}),
            (404, "POST", "/v1/backup", {"namespace": "ai", "pvc": "no-such-pvc"}),
            (400, "POST", "/v1/backup", {"namespace": "ai"}),
            (200, "POST", "/v1/backup/namespace", {"namespace": "databases", "dry_run": True}),
            (200, "POST", "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "lint-restore",
                                           "dry_run": True}),
            (200, "GET", "/v1/inventory", None),
            (200, "GET", "/v1/backups?namespace=ai&pvc=model-store", None),
            (404, "GET", "/no-such-page", None),
        ]
        for expected, method, path, body in activity:
            status, _, answer = http(f"{url}{path}", method, body)
            assert status == expected, (method, path, status, answer[:500])

        samples = scrape(server)
        # The dump is a rich one: every kind of series the product publishes is in it.
        for name in ("pvc_backup_age_hours", "pvc_backup_count", "pvc_backup_health",
                     "pvc_backup_last_success_timestamp_seconds", "pvc_backup_expected_interval_seconds",
                     "pvc_backup_stuck", "soteria_pvcs_without_policy", "soteria_backups_in_progress",
                     "soteria_inventory_refresh_timestamp_seconds", "soteria_inventory_refresh_duration_seconds",
                     "soteria_backup_requests_total", "soteria_restore_requests_total",
                     "soteria_namespace_backup_requests_total", "soteria_upstream_requests_total",
                     "django_http_requests_latency_seconds_by_view_method_bucket"):
            assert name in samples.names, name
        # One per PVC, namespace batches included: llm-cache, then postgres-data and redis-data.
        assert samples.one("soteria_backup_requests_total", driver="longhorn", result="dry_run") == 3
        assert samples.one("soteria_namespace_backup_requests_total", driver="longhorn", result="dry_run") == 1
        assert samples.one("soteria_restore_requests_total", driver="longhorn", result="dry_run") == 1
        assert samples.one("pvc_backup_expected_interval_seconds", namespace="ai", pvc="llm-cache") == 6 * 3600

        dump = http(f"{url}/metrics")[2]
        findings = _lint(dump)
        assert {line.split()[0] for line in findings} == KNOWN, findings
        assert len(findings) == 2, findings
    finally:
        assert http(f"{url}/v1/policies/ai.llm-cache", "DELETE")[0] in (200, 204)
