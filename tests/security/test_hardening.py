"""Finding 10: tokens taken verbatim (their length is checked at start-up: tests/settings/test_startup.py),
X-Forwarded-* only from trusted proxies, a
Content-Security-Policy on console pages, audit lines that cannot be forged, and a schema that
needs the view permission (real gunicorn, auth required)."""

import re
from http.cookies import SimpleCookie

import pytest

from tests.support import cast
from tests.support.cast import POD, PROXY, SECURE_ENV
from tests.support.http import call
from tests.support.soteria import start_soteria, stop_soteria

ODD_TOKEN = "odd:token with spaces:and-colons-0123456789abcdef"


@pytest.fixture(scope="module")
def odd_token_server(sandbox, tmp_path_factory):
    tokens = f"{SECURE_ENV['SOTERIA_AUTH_BEARER_TOKENS']},{ODD_TOKEN}"
    server = start_soteria(sandbox, tmp_path_factory.mktemp("odd-data"), workers=1,
                           **{**SECURE_ENV, "SOTERIA_AUTH_BEARER_TOKENS": tokens})
    yield server
    stop_soteria(server)


def test_a_plain_token_is_accepted_exactly_as_configured(odd_token_server):
    reply = call(odd_token_server.url, "GET", "/v1/whoami", headers=(("Authorization", f"Bearer {ODD_TOKEN}"),))
    assert reply.status == 200 and reply.json()["user"] == "token:odd"
    # A named token still works by its secret alone, and by its whole entry.
    assert call(odd_token_server.url, "GET", "/v1/whoami", headers=cast.AUTOMATION).json()["user"] == "token:ci"
    part = call(odd_token_server.url, "GET", "/v1/whoami", headers=(("Authorization", "Bearer token with spaces"),))
    assert part.status == 401


def _console_form(server, headers, peer):
    """The CSRF cookie and token a console page hands out."""
    page = call(server.url, "GET", "/pvc/ai/llm-cache/", headers=headers, peer=peer)
    assert page.status == 200, page.text
    cookie = SimpleCookie(page.headers["set-cookie"])["csrftoken"].value
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    return cookie, token


def _post_backup_form(server, headers, peer, forwarded_proto=None):
    cookie, token = _console_form(server, headers, peer)
    sent = [*headers, ("Cookie", f"csrftoken={cookie}"), ("Content-Type", "application/x-www-form-urlencoded")]
    if forwarded_proto:
        sent.append(("X-Forwarded-Proto", forwarded_proto))
    body = f"csrfmiddlewaretoken={token}&tags=".encode()  # the first send: accepted, it answers the plan
    return call(server.url, "POST", "/pvc/ai/llm-cache/backup", headers=sent, body=body, peer=peer)


def test_x_forwarded_proto_counts_only_from_the_trusted_proxy(secure_server):
    # From the proxy, "https" makes Django check the Referer of a form post, which is absent here.
    assert _post_backup_form(secure_server, cast.ADMIN, PROXY).status == 200
    assert _post_backup_form(secure_server, cast.ADMIN, PROXY, forwarded_proto="https").status == 403
    # From any other pod the header is dropped: the same post is plain HTTP and goes through.
    assert _post_backup_form(secure_server, cast.AUTOMATION, POD, forwarded_proto="https").status == 200


def test_x_forwarded_host_counts_only_from_the_trusted_proxy(secure_server):
    forwarded = (("X-Forwarded-Host", "evil.example"),)  # not in SOTERIA_ALLOWED_HOSTS: refused when it counts
    assert call(secure_server.url, "GET", "/v1/whoami", headers=[*cast.AUTOMATION, *forwarded], peer=POD).status == 200
    assert call(secure_server.url, "GET", "/v1/whoami", headers=[*cast.ADMIN, *forwarded], peer=PROXY).status == 400


def test_console_pages_carry_a_strict_content_security_policy(secure_server):
    page = call(secure_server.url, "GET", "/", headers=cast.ADMIN, peer=PROXY)
    policy = page.headers["content-security-policy"]
    assert "default-src 'none'" in policy and "frame-ancestors 'none'" in policy
    assert re.search(r"'nonce-([^']+)'", policy)
    # The console's look and its one script are static files: no inline style or script at all.
    assert '<link rel="stylesheet" href="/static/soteria/console.css">' in page.text
    assert '<script src="/static/soteria/console.js" defer></script>' in page.text
    assert "<style" not in page.text and " style=" not in page.text and "<script>" not in page.text
    again = call(secure_server.url, "GET", "/", headers=cast.ADMIN, peer=PROXY).headers["content-security-policy"]
    assert again != policy  # a fresh nonce per response


def test_audit_log_lines_quote_what_callers_supply(secure_server):
    forger = (("X-Auth-Request-User", "eve status=200 result=ok"), ("X-Auth-Request-Groups", "admin"))
    call(secure_server.url, "POST", "/v1/backup", headers=forger, peer=PROXY, json={"namespace": "ai", "pvc": "nope"})
    log = (secure_server.data_dir / "gunicorn.log").read_text()
    line = next(line for line in reversed(log.splitlines()) if "soteria.audit" in line and "eve" in line)
    assert 'actor="eve status=200 result=ok" auth=header action="backup.create" target="ai/nope" status=404' in line


def test_the_openapi_schema_needs_the_view_permission(secure_server):
    assert call(secure_server.url, "GET", "/v1/openapi", headers=cast.OUTSIDER, peer=PROXY).status == 403
    assert call(secure_server.url, "GET", "/v1/openapi", peer=PROXY).status == 401
    assert call(secure_server.url, "GET", "/v1/openapi", headers=cast.VIEWER, peer=PROXY).status == 200
