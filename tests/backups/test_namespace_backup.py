"""POST /v1/backup/namespace: every bound Longhorn PVC, one result each, failures contained."""

import pytest
import time_machine

from soteria_site.core.errors import UpstreamError
from tests.support.fake_cluster import NOW, track_concurrency

pytestmark = pytest.mark.django_db(transaction=True)


def _post(client, body):
    return client.post("/v1/backup/namespace", body, content_type="application/json")


def test_backs_up_bound_longhorn_pvcs_and_skips_the_rest(client, cluster):
    cluster.add_pvc("ai", "a")
    cluster.add_pvc("ai", "b")
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.add_pvc("ai", "local", storage_class="local-path", csi_driver=None)
    cluster.add_pvc("other", "c")
    with time_machine.travel(NOW, tick=False):
        response = _post(client, {"namespace": "ai", "tags": ["reason=upgrade"]})
    assert response.status_code == 200, response.content
    body = response.json()
    statuses = {r["pvc"]: (r["status"], r["error"]) for r in body["results"]}
    assert statuses == {"a": ("success", ""), "b": ("success", ""), "local": ("skipped", "unsupported_driver"),
                        "pending": ("skipped", "pvc_not_bound")}
    assert body["totals"] == {"total": 4, "success": 2, "failed": 0, "skipped": 2, "planned": 0}
    assert [r["backup"] for r in body["results"] if r["pvc"] == "a"] == ["soteria-backup-ai-a-20260412-153000"]
    assert cluster.calls["backup_snapshot"] == 2


def test_one_failing_pvc_does_not_stop_the_others(client, cluster):
    cluster.add_pvc("ai", "a")
    cluster.add_pvc("ai", "b", backups=[("InProgress", None, None)])
    cluster.add_pvc("ai", "c")
    body = _post(client, {"namespace": "ai"}).json()
    statuses = {r["pvc"]: r["status"] for r in body["results"]}
    assert statuses == {"a": "success", "b": "failed", "c": "success"}, body
    failed = next(r for r in body["results"] if r["pvc"] == "b")
    assert failed["error"] == "backup_in_progress" and failed["detail"]


def test_upstream_failure_on_every_pvc_is_reported_per_pvc(client, cluster):
    cluster.add_pvc("ai", "a")
    cluster.fail["backup_snapshot"] = UpstreamError("longhorn", "boom")
    body = _post(client, {"namespace": "ai"}).json()
    assert body["results"][0]["status"] == "failed" and body["results"][0]["error"] == "longhorn_error"
    assert body["totals"]["failed"] == 1


def test_dry_run_plans_every_pvc_without_mutating(client, cluster):
    cluster.add_pvc("ai", "a")
    cluster.add_pvc("ai", "b")
    body = _post(client, {"namespace": "ai", "dry_run": True}).json()
    assert {r["status"] for r in body["results"]} == {"planned"}
    assert all(r["plan"][1]["call"] == "snapshotBackup" for r in body["results"])
    assert body["totals"]["planned"] == 2
    assert cluster.mutating_calls == {}


def test_unknown_namespace_is_404_and_bad_names_400(client, cluster):
    assert _post(client, {"namespace": "nowhere"}).status_code == 404
    assert _post(client, {"namespace": "No"}).json()["field"] == "namespace"
    assert _post(client, {"namespace": "ai", "extra": 1}).json()["field"] == "extra"


def test_the_namespace_is_backed_up_at_most_the_concurrency_cap_at_once(client, cluster, settings, monkeypatch):
    from backups.clients import longhorn

    settings.SOTERIA_NAMESPACE_CONCURRENCY = 3
    for i in range(9):
        cluster.add_pvc("ai", f"data-{i}")
    peak = track_concurrency(monkeypatch, longhorn, "backup_snapshot", together=3)
    body = _post(client, {"namespace": "ai"}).json()
    assert body["totals"]["success"] == 9, body
    assert peak() == 3
