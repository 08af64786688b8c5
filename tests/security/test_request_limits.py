"""Findings 4 and 9: bounded bodies, nothing parsed or audited before authentication, rates per
identity, bounded namespace batches, and probes that answer while the API is saturated."""

import sqlite3
import threading

import pytest

from sandbox import faults
from tests.support import cast
from tests.support.cast import POD, PROXY, SECURE_ENV
from tests.support.http import call, metric
from tests.support.polling import wait_for
from tests.support.soteria import start_soteria, stop_soteria

DRY_BACKUP = {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}


def _audit_rows(server) -> list[tuple]:
    with sqlite3.connect(f"file:{server.data_dir / 'soteria.sqlite3'}?mode=ro", uri=True) as db:
        return db.execute("select actor, action, status from soteria_site_auditentry order by id").fetchall()


def test_a_body_over_the_limit_is_refused_before_it_is_read(secure_server):
    before = metric(secure_server.url, "soteria_requests_refused_total", reason="body_too_large")
    big = b'{"namespace": "ai", "pvc": "llm-cache", "tags": ["' + b"x" * 70_000 + b'"]}'
    for who, peer in ((cast.ADMIN, PROXY), ((), POD)):
        reply = call(secure_server.url, "POST", "/v1/backup", headers=[*who, ("Content-Type", "application/json")],
                     body=big, peer=peer)
        assert reply.status == 413 and reply.json()["error"] == "body_too_large"
    assert metric(secure_server.url, "soteria_requests_refused_total", reason="body_too_large") == before + 2


def test_a_body_just_under_the_limit_is_read(secure_server):
    body = b'{"namespace": "ai", "pvc": "llm-cache", "dry_run": true, "padding": "' + b"x" * 60_000 + b'"}'
    reply = call(secure_server.url, "POST", "/v1/backup", headers=[*cast.ADMIN, ("Content-Type", "application/json")],
                 body=body, peer=PROXY)
    assert reply.status == 400 and reply.json()["field"] == "padding"  # parsed: the unknown field is named


def test_a_chunked_body_without_length_is_refused(secure_server):
    import http.client
    from urllib.parse import urlsplit

    url = urlsplit(secure_server.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.request("POST", "/v1/backup", body=iter([b'{"namespace": "ai",', b' "pvc": "llm-cache"}']),
                 headers={"Content-Type": "application/json", **dict(cast.AUTOMATION)}, encode_chunked=True)
    response = conn.getresponse()
    assert response.status == 411
    conn.close()


def test_requests_that_fail_authentication_leave_no_audit_row(secure_server):
    rows = _audit_rows(secure_server)
    call(secure_server.url, "POST", "/v1/backup", json=DRY_BACKUP, peer=POD)  # no credentials
    call(secure_server.url, "POST", "/v1/backup", json=DRY_BACKUP, headers=(("Authorization", "Bearer nope"),))
    call(secure_server.url, "POST", "/v1/backup", json=DRY_BACKUP, headers=cast.ADMIN, peer=POD)  # untrusted peer
    call(secure_server.url, "POST", "/v1/backup", json=DRY_BACKUP, peer=PROXY,  # fails the CSRF origin check
         headers=[*cast.ADMIN, ("Origin", "https://evil.example")])
    assert _audit_rows(secure_server) == rows
    assert call(secure_server.url, "POST", "/v1/backup", json=DRY_BACKUP, headers=cast.ADMIN, peer=PROXY).status == 200
    assert _audit_rows(secure_server)[len(rows):] == [("alice", "backup.create", 200)]


@pytest.fixture(scope="module")
def limited_server(sandbox, tmp_path_factory):
    server = start_soteria(sandbox, tmp_path_factory.mktemp("limited-data"), workers=1, **{
        **SECURE_ENV, "SOTERIA_THROTTLE_MUTATIONS": "3/minute", "SOTERIA_THROTTLE_INVENTORY": "2/minute",
        "SOTERIA_NAMESPACE_BATCH_MAX": "2", "SOTERIA_WEB_THREADS": "2"})
    yield server
    stop_soteria(server)


def test_inventory_builds_are_limited_per_identity(limited_server):
    before = metric(limited_server.url, "soteria_requests_refused_total", reason="throttled")
    assert [call(limited_server.url, "GET", "/v1/inventory", headers=cast.VIEWER, peer=PROXY).status
            for _ in range(2)] == [200, 200]
    third = call(limited_server.url, "GET", "/v1/inventory", headers=cast.VIEWER, peer=PROXY)
    assert third.status == 429 and third.json()["error"] == "throttled"
    assert 1 <= int(third.headers["retry-after"]) <= 60
    assert call(limited_server.url, "GET", "/v1/inventory", headers=cast.ADMIN, peer=PROXY).status == 200
    assert call(limited_server.url, "GET", "/", headers=cast.VIEWER, peer=PROXY).status == 429  # the console too
    assert metric(limited_server.url, "soteria_requests_refused_total", reason="throttled") == before + 2


def test_mutations_are_limited_per_identity(limited_server):
    statuses = [call(limited_server.url, "POST", "/v1/backup", headers=cast.AUTOMATION, json=DRY_BACKUP).status
                for _ in range(4)]
    assert statuses == [200, 200, 200, 429]
    assert call(limited_server.url, "GET", "/v1/backups?namespace=ai&pvc=llm-cache",
                headers=cast.AUTOMATION).status == 200  # reading is not a mutation


def test_a_namespace_batch_over_the_cap_is_refused_before_any_work(limited_server):
    reply = call(limited_server.url, "POST", "/v1/backup/namespace", headers=cast.ADMIN, peer=PROXY,
                 json={"namespace": "ai", "dry_run": True})
    assert reply.status == 400 and reply.json()["error"] == "batch_too_large"
    assert reply.json()["limit"] == 2 and reply.json()["pvcs"] >= 3
    restore = call(limited_server.url, "POST", "/v1/restores/namespace", headers=cast.OPERATOR, peer=PROXY,
                   json={"namespace": "ai", "target_namespace": "media", "dry_run": True})
    assert restore.status == 400 and restore.json()["error"] == "batch_too_large"


def test_healthz_answers_while_slow_requests_hold_the_workers(limited_server, sandbox):
    """One worker with two threads: one plans a restore that Longhorn answers slowly (the inventory
    no longer asks Longhorn's manager anything), another caller's inventory is told the server is
    busy (503) at once, and /healthz still answers."""
    faults.reset_calls(sandbox)
    faults.inject(sandbox, "volume.get", mode="slow", delay=8, count=0)
    results = {}
    try:
        slow = threading.Thread(target=lambda: results.setdefault("slow", call(
            limited_server.url, "POST", "/v1/restores", headers=cast.ADMIN, peer=PROXY, timeout=60,
            json={"namespace": "ai", "pvc": "llm-cache", "target_pvc": "busy-probe", "dry_run": True})))
        slow.start()
        wait_for(lambda: faults.calls(sandbox).get("volume.get", 0) >= 1 or None, what="slow restore plan under way")
        busy = call(limited_server.url, "GET", "/v1/inventory", headers=cast.ADMIN, peer=PROXY, timeout=5)
        assert busy.status == 503 and busy.json()["error"] == "busy" and busy.headers["retry-after"]
        real = call(limited_server.url, "POST", "/v1/backup", headers=cast.OPERATOR, peer=PROXY, timeout=5,
                    json={"namespace": "ai", "pvc": "llm-cache"})  # may wait for an attachment: a long request
        assert real.status == 503 and real.json()["error"] == "busy"
        assert call(limited_server.url, "GET", "/healthz", timeout=5).status == 200
        assert call(limited_server.url, "GET", "/metrics", timeout=5).status == 200
        # A dry run is short: it takes the free thread, not a long-request slot.
        assert call(limited_server.url, "POST", "/v1/backup", headers=cast.OPERATOR, peer=PROXY, timeout=30,
                    json=DRY_BACKUP).status == 200
    finally:
        faults.clear(sandbox)
    slow.join(timeout=60)
    assert results["slow"].status == 200
