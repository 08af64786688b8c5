"""Finding 1 and 5: identity headers count only from trusted proxies, and what an identity may
do follows from how it authenticated, never from its name (real gunicorn, auth required)."""


from tests.support import cast
from tests.support.cast import POD, PROXY
from tests.support.http import call, metric

FORGED_ADMIN = (("X-Auth-Request-User", "x"), ("X-Auth-Request-Groups", "admin"))


def test_with_no_trusted_proxy_configured_forged_admin_headers_get_nothing(default_server):
    before = metric(default_server.url, "soteria_authz_denials_total", reason="untrusted_proxy")
    for path in ("/v1/inventory", "/v1/whoami"):
        reply = call(default_server.url, "GET", path, headers=FORGED_ADMIN, peer=POD)
        assert reply.status == 401, reply.text
        assert "SOTERIA_TRUSTED_PROXIES is empty" in reply.json()["reason"]
    backup = call(default_server.url, "POST", "/v1/backup", headers=FORGED_ADMIN, peer=POD,
                  json={"namespace": "ai", "pvc": "llm-cache", "dry_run": True})
    assert backup.status == 401
    assert metric(default_server.url, "soteria_authz_denials_total", reason="untrusted_proxy") == before + 3


def test_with_no_trusted_proxy_bearer_tokens_still_work(default_server):
    reply = call(default_server.url, "GET", "/v1/whoami", headers=cast.AUTOMATION, peer=POD)
    assert reply.status == 200 and reply.json()["auth"] == "token" and reply.json()["user"] == "token:ci"


def test_start_up_says_once_that_identity_headers_are_ignored(default_server, secure_server):
    default_log = (default_server.data_dir / "gunicorn.log").read_text()
    assert default_log.count("SOTERIA_TRUSTED_PROXIES is empty, so identity headers are ignored") == 1
    assert "SOTERIA_TRUSTED_PROXIES is empty" not in (secure_server.data_dir / "gunicorn.log").read_text()


def test_headers_from_a_pod_that_is_not_the_trusted_proxy_are_ignored(secure_server):
    reply = call(secure_server.url, "GET", "/v1/inventory", headers=cast.ADMIN, peer=POD)
    assert reply.status == 401
    assert reply.json()["reason"] == (f"identity headers from {POD} are ignored: that address is not in "
                                      "SOTERIA_TRUSTED_PROXIES")
    assert call(secure_server.url, "GET", "/v1/inventory", headers=cast.ADMIN, peer=PROXY).status == 200


def test_a_request_without_credentials_is_told_why_it_is_anonymous(secure_server):
    reply = call(secure_server.url, "GET", "/v1/whoami", peer=PROXY)
    assert reply.status == 401
    assert reply.json()["reason"] == "the request carries no identity headers and no bearer token"


def test_a_proxy_user_named_like_a_token_is_an_ordinary_user(secure_server):
    impostor = (("X-Auth-Request-User", "token:ci"), ("X-Auth-Request-Groups", "guests"))
    who = call(secure_server.url, "GET", "/v1/whoami", headers=impostor, peer=PROXY)
    assert who.status == 200
    assert who.json()["auth"] == "header" and who.json()["permissions"] == []
    for method, path, body in (("POST", "/v1/policies", {"namespace": "media", "interval_hours": 1}),
                               ("POST", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}),
                               ("DELETE", "/v1/policies/media", None)):
        assert call(secure_server.url, method, path, headers=impostor, peer=PROXY, json=body).status == 403
    policies = call(secure_server.url, "GET", "/v1/policies", headers=cast.ADMIN, peer=PROXY).json()["policies"]
    assert "media" not in [p["id"] for p in policies]
