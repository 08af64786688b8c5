"""POST /v1/backup and GET /v1/backups at the client seam."""

import pytest

from tests.support.http import post

pytestmark = pytest.mark.django_db


def test_backup_snapshots_then_backs_up_with_labels_and_mode(client, cluster, frozen, settings):
    settings.SOTERIA_LONGHORN_BACKUP_MODE = "full"
    cluster.add_pvc("ai", "llm-cache")
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache",
                                           "tags": ["namespace=ai", "service=llm", "pre-upgrade"], "dry_run": False})
    assert response.status_code == 200, response.content
    assert response.json() == {"driver": "longhorn", "volume": "pvc-ai-llm-cache",
                               "backup": "soteria-backup-ai-llm-cache-20260412-153000", "namespace": "ai",
                               "requested_by": "anonymous", "dry_run": False}
    assert ("pvc-ai-llm-cache", "soteria-backup-ai-llm-cache-20260412-153000") in cluster.snapshots
    assert cluster.last_backup_call == {"volume": "pvc-ai-llm-cache",
                                        "snapshot": "soteria-backup-ai-llm-cache-20260412-153000",
                                        "labels": {"namespace": "ai", "service": "llm", "pre-upgrade": "true"},
                                        "mode": "full"}


def test_backup_records_an_event_on_the_pvc(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache")
    post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    [event] = cluster.events
    assert event["involvedObject"]["name"] == "llm-cache" and event["reason"] == "BackupStarted"
    assert "soteria-backup-ai-llm-cache-20260412-153000" in event["message"]
    assert "anonymous" in event["message"]


def test_dry_run_returns_the_plan_and_mutates_nothing(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache")
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "tags": ["a=b"], "dry_run": True})
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True
    assert [step["call"] for step in body["plan"]] == ["snapshotCRCreate", "snapshotBackup", "kubernetes.createJob"]
    assert body["plan"][1]["args"] == {"name": "soteria-backup-ai-llm-cache-20260412-153000",
                                       "labels": {"a": "b"}, "backupMode": "incremental"}
    manifest = body["plan"][2]
    assert manifest["target"] == "ai/soteria-manifest-llm-cache-20260412-153000"
    assert manifest["args"]["manifest"] == "soteria-backup-ai-llm-cache-20260412-153000"
    assert manifest["args"]["since"] == "2026-04-12T15:29:30Z" and manifest["args"]["readOnly"] is True
    assert cluster.mutating_calls == {}


def test_a_second_backup_while_one_runs_is_409_naming_it(client, cluster, frozen):
    cluster.add_pvc("ai", "llm-cache", backups=[("InProgress", None, "soteria-backup-ai-llm-cache-20260412-152000")])
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    assert response.status_code == 409
    assert response.json()["error"] == "backup_in_progress"
    assert response.json()["running"] == "backup-pvc-ai-llm-cache-0"
    assert cluster.mutating_calls == {}


@pytest.mark.parametrize("body,field", [
    ({"namespace": "AI", "pvc": "x"}, "namespace"),
    ({"namespace": "ai", "pvc": "x_y"}, "pvc"),
    ({"namespace": "ai"}, "pvc"),
    ({"namespace": "ai", "pvc": "x", "tags": ["bad key=v"]}, "tags"),
    ({"namespace": "ai", "pvc": "x", "tags": ["k=bad value"]}, "tags"),
    ({"namespace": "ai", "pvc": "x", "tags": ["KubernetesStatus=x"]}, "tags"),
    ({"namespace": "ai", "pvc": "x", "tags": "a=b"}, "tags"),
    ({"namespace": "ai", "pvc": "x", "dry_run": "yes"}, "dry_run"),
    ({"namespace": "ai", "pvc": 7}, "pvc"),
    ({"namespace": "ai", "pvc": "x", "snapshot": "y"}, "snapshot"),
])
def test_bad_input_is_400_naming_the_field_before_any_call(client, cluster, body, field):
    cluster.add_pvc("ai", "x")
    response = post(client, "/v1/backup", body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert sum(cluster.calls.values()) == 0


def test_non_json_body_is_400(client, cluster):
    response = client.post("/v1/backup", "{oops", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_json"
    response = client.post("/v1/backup", "[1, 2]", content_type="application/json")
    assert response.status_code == 400 and response.json()["error"] == "invalid_input"


def test_unknown_pvc_is_404(client, cluster):
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "nope"})
    assert response.status_code == 404 and "ai/nope" in response.json()["detail"]


def test_pending_pvc_is_409_not_bound(client, cluster):
    cluster.add_pvc("ai", "waiting", bound=False)
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "waiting"})
    assert response.status_code == 409 and response.json()["error"] == "pvc_not_bound"


def test_non_longhorn_pvc_is_422_naming_the_driver(client, cluster):
    cluster.add_pvc("ai", "local", storage_class="local-path", csi_driver=None)
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "local"})
    assert response.status_code == 422
    assert response.json()["error"] == "unsupported_driver" and response.json()["driver"] == "longhorn"


def test_longhorn_failure_is_502_with_longhorns_message(client, cluster):
    from soteria_site.core.errors import UpstreamError

    cluster.add_pvc("ai", "x")
    cluster.fail["backup_snapshot"] = UpstreamError("longhorn", "Longhorn failed volumes.snapshotBackup: "
                                                    "failed to backup snapshot: disk full")
    response = post(client, "/v1/backup", {"namespace": "ai", "pvc": "x"})
    assert response.status_code == 502
    assert response.json()["error"] == "longhorn_error" and "disk full" in response.json()["detail"]


def test_backups_list_is_newest_first_with_what_a_restore_needs(client, cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, None), ("Completed", 2, None), ("Completed", 10, None)])
    response = client.get("/v1/backups?namespace=ai&pvc=llm-cache")
    assert response.status_code == 200
    body = response.json()
    assert body["volume"] == "pvc-ai-llm-cache"
    assert [b["name"] for b in body["backups"]] == ["backup-pvc-ai-llm-cache-1", "backup-pvc-ai-llm-cache-2",
                                                    "backup-pvc-ai-llm-cache-0"]
    first = body["backups"][0]
    assert {"name", "snapshot", "url", "state", "created", "size", "labels"} <= set(first)
    assert first["url"].startswith("s3://") and first["labels"] == {"k": "v"}


def test_backups_list_requires_both_parameters_and_a_known_pvc(client, cluster):
    assert client.get("/v1/backups?namespace=ai").json()["field"] == "pvc"
    assert client.get("/v1/backups?pvc=x").status_code == 400
    assert client.get("/v1/backups?namespace=ai&pvc=nope").status_code == 404


def test_backups_list_of_a_never_backed_up_pvc_is_empty(client, cluster):
    cluster.add_pvc("ai", "new")
    body = client.get("/v1/backups?namespace=ai&pvc=new").json()
    assert body == {"namespace": "ai", "pvc": "new", "volume": "pvc-ai-new", "backups": []}
