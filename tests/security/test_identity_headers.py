"""Finding 2: the identity comes from one header family as a whole, and a repeated credential
header is refused (real gunicorn joins repeats with a comma, so they must be caught before)."""

import pytest

from tests.support import cast
from tests.support.cast import PROXY, SECURE_ENV
from tests.support.http import call, metric
from tests.support.soteria import start_soteria, stop_soteria

DRY_BACKUP = {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}


def test_a_client_cannot_add_groups_from_the_other_family(secure_server):
    mixed = (("X-Auth-Request-User", "erin"), ("X-Forwarded-Groups", "admin"))
    who = call(secure_server.url, "GET", "/v1/whoami", headers=mixed, peer=PROXY).json()
    assert who["user"] == "erin" and who["groups"] == [] and who["permissions"] == []
    assert call(secure_server.url, "POST", "/v1/backup", headers=mixed, peer=PROXY, json=DRY_BACKUP).status == 403


def test_x_forwarded_headers_count_when_no_x_auth_request_header_is_present(secure_server):
    forwarded = (("X-Forwarded-User", "frank"), ("X-Forwarded-Groups", "admin"))
    who = call(secure_server.url, "GET", "/v1/whoami", headers=forwarded, peer=PROXY).json()
    assert who["user"] == "frank" and who["groups"] == ["admin"]


@pytest.mark.parametrize("header", ["X-Auth-Request-Groups", "X-Auth-Request-User", "X-Forwarded-Groups"])
def test_a_repeated_identity_header_is_refused_and_counted(secure_server, header):
    before = metric(secure_server.url, "soteria_authz_denials_total", reason="bad_identity_header")
    sent = [("X-Auth-Request-User", "mallory"), ("X-Auth-Request-Groups", "guests"), (header, "admin")]
    if header.startswith("X-Forwarded"):
        sent = [("X-Forwarded-User", "mallory"), (header, "guests"), (header, "admin")]
    reply = call(secure_server.url, "GET", "/v1/inventory", headers=sent, peer=PROXY)
    assert reply.status == 400, reply.text
    assert reply.json()["error"] == "bad_identity_header" and header in reply.json()["detail"]
    assert metric(secure_server.url, "soteria_authz_denials_total", reason="bad_identity_header") == before + 1


def test_a_repeated_authorization_header_is_refused_from_any_peer(secure_server):
    twice = [*cast.AUTOMATION, ("Authorization", "Bearer something-else")]
    reply = call(secure_server.url, "GET", "/v1/whoami", headers=twice)
    assert reply.status == 400 and reply.json()["error"] == "bad_identity_header"


def test_a_client_cannot_fake_the_repeat_marker_to_pass(secure_server):
    faked = [*cast.ADMIN, ("X-Soteria-Repeated-Headers", "")]
    assert call(secure_server.url, "GET", "/v1/whoami", headers=faked, peer=PROXY).status == 200


@pytest.fixture(scope="module")
def pinned_server(sandbox, tmp_path_factory):
    server = start_soteria(sandbox, tmp_path_factory.mktemp("pinned-data"), workers=1,
                           **{**SECURE_ENV, "SOTERIA_AUTH_HEADERS": "x-forwarded"})
    yield server
    stop_soteria(server)


def test_a_pinned_family_ignores_the_other_one_entirely(pinned_server):
    # The proxy sets X-Forwarded-*; a client-sent X-Auth-Request-* set must not win in auto order.
    sent = (("X-Forwarded-User", "dave"), ("X-Forwarded-Groups", "viewers"),
            ("X-Auth-Request-User", "alice"), ("X-Auth-Request-Groups", "admin"))
    who = call(pinned_server.url, "GET", "/v1/whoami", headers=sent, peer=PROXY).json()
    assert who["user"] == "dave" and who["groups"] == ["viewers"]
    only_other = call(pinned_server.url, "GET", "/v1/whoami", headers=cast.ADMIN, peer=PROXY)
    assert only_other.status == 401
