"""The Longhorn client at its seam: envelopes parsed, failures become Soteria's errors."""

import threading

import pytest
from werkzeug.wrappers import Response

from backups.clients import longhorn
from soteria_site.core.errors import NotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from tests.support.fakes import FakeServer, json_response

VOLUME = {
    "id": "pvc-1", "name": "pvc-1", "type": "volume", "size": "53687091200", "state": "attached",
    "robustness": "healthy", "ready": True, "created": "2024-05-01 10:00:00 +0000 UTC",
    "kubernetesStatus": {"pvName": "pvc-1", "pvcName": "llm-cache", "namespace": "ai"},
    "lastBackup": "backup-aaaa", "lastBackupAt": "2024-05-02T10:00:00Z",
    "backupStatus": [{"id": "backup-aaaa", "snapshot": "snap-1", "state": "Completed", "progress": 100,
                      "backupURL": "s3://b@r/?backup=backup-aaaa&volume=pvc-1", "error": "", "size": "1024",
                      "links": None, "actions": None}],
    "restoreRequired": False, "restoreInitiated": False, "restoreStatus": [],
}
ERROR_500 = {"type": "error", "status": 500, "code": "Internal Server Error",
             "message": "failed to backup snapshot: volume and snapshot name required", "detail": "",
             "links": {"self": "x"}, "actions": {}}


@pytest.fixture
def fake(settings):
    with FakeServer() as server:
        settings.SOTERIA_LONGHORN_URL = server.url
        settings.SOTERIA_UPSTREAM_TIMEOUT_SECONDS = 1.0
        longhorn.reset()
        yield server


def test_lists_volumes_from_the_collection_envelope(fake):
    fake.route("GET", "/v1/volumes", {"type": "collection", "resourceType": "volume", "data": [VOLUME]})
    [volume] = longhorn.list_volumes()
    assert volume.name == "pvc-1" and volume.pvc_name == "llm-cache" and volume.pvc_namespace == "ai"
    assert volume.created.isoformat() == "2024-05-01T10:00:00+00:00"
    assert volume.backups[0].state == "Completed" and volume.backups[0].url.endswith("volume=pvc-1")


def test_sends_accept_json(fake):
    seen = {}

    def handler(request):
        seen["accept"] = request.headers.get("Accept")
        return json_response({"type": "collection", "data": []})

    fake.route("GET", "/v1/volumes", handler)
    longhorn.list_volumes()
    assert seen["accept"] == "application/json"


def test_missing_volume_is_none_on_longhorns_empty_404(fake):
    fake.route("GET", "/v1/volumes/nope", lambda r: Response(b"", status=404))
    assert longhorn.get_volume("nope") is None


def test_500_error_body_is_surfaced_with_longhorns_message(fake):
    fake.route("GET", "/v1/volumes", lambda r: json_response(ERROR_500, status=500))
    with pytest.raises(UpstreamError) as info:
        longhorn.list_volumes()
    assert info.value.status == 502 and info.value.code == "longhorn_error"
    assert "volume and snapshot name required" in info.value.detail


def test_not_found_error_body_becomes_not_found(fake):
    body = {**ERROR_500, "status": 404, "code": "Not Found", "message": "cannot find backup volume x"}
    fake.route("POST", "/v1/backupvolumes/x", lambda r: json_response(body, status=404))
    with pytest.raises(NotFound, match="cannot find backup volume x"):
        longhorn.list_backups("x")


def test_backups_are_sorted_by_creation_not_by_name(fake):
    data = [{"name": "backup-ffff", "created": "2024-05-01T10:00:00Z", "state": "Completed"},
            {"name": "backup-0000", "created": "2024-05-03T10:00:00Z", "state": "Completed"},
            {"name": "backup-8888", "created": "2024-05-02T10:00:00Z", "state": "Completed"}]
    fake.route("POST", "/v1/backupvolumes/pvc-1", lambda r: json_response({"type": "collection", "data": data}))
    assert [b.name for b in longhorn.list_backups("pvc-1")] == ["backup-ffff", "backup-8888", "backup-0000"]
    assert fake.calls[-1] == ("POST", "/v1/backupvolumes/pvc-1", "action=backupList")


def test_idempotent_reads_are_retried_after_a_503(fake):
    answers = iter([Response("busy", status=503), json_response({"type": "collection", "data": []})])
    fake.route("GET", "/v1/backupvolumes", lambda r: next(answers))
    assert longhorn.list_backup_volumes() == []
    assert len(fake.calls) == 2


def test_unreachable_manager_is_503_unavailable(settings):
    settings.SOTERIA_LONGHORN_URL = "http://127.0.0.1:9"
    with pytest.raises(UpstreamUnavailable) as info:
        longhorn.list_volumes()
    assert info.value.status == 503 and info.value.code == "longhorn_unavailable"
    assert "connection refused" in info.value.detail


def test_a_slow_manager_times_out_as_504(fake, settings):
    release = threading.Event()

    def slow(request):
        release.wait(5)
        return json_response({"type": "collection", "data": []})

    fake.route("GET", "/v1", slow)
    try:
        with pytest.raises(UpstreamTimeout) as info:
            longhorn.ping(timeout=0.3)
    finally:
        release.set()
    assert info.value.status == 504 and info.value.code == "longhorn_timeout"


def test_environment_proxy_and_ca_settings_do_not_change_the_client(fake, monkeypatch, tmp_path):
    # With requests' default trust_env, these would send the call to a dead proxy
    # (and an https manager would be verified against a missing bundle).
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "no-such-bundle.pem"))
    fake.route("GET", "/v1", {"id": "v1", "type": "apiVersion"})
    longhorn.reset()
    longhorn.ping()
    assert fake.calls == [("GET", "/v1", "")]


def test_a_non_json_answer_is_a_bad_upstream_answer(fake):
    fake.route("GET", "/v1/volumes", lambda r: Response("<html>", status=200, content_type="text/html"))
    with pytest.raises(UpstreamError, match="not JSON"):
        longhorn.list_volumes()
