"""Hostile input is refused with a clear 4xx and never reaches Longhorn, restic or Kubernetes.

Soteria runs under gunicorn (auth required, both drivers) on the sandbox. Every case is sent as
raw bytes (http.client would refuse to send most of them) by a caller that would otherwise be
allowed: the bearer token, or an admin's identity from the trusted proxy. Each body names a real
PVC and asks for a dry run, so a refusal that failed would read Longhorn and Kubernetes (and
change nothing). The proof that nothing was reached is two counters that every upstream call
moves: the Longhorn emulator's own per-route call counts (/sandbox/calls), and Soteria's
soteria_upstream_requests_total, which the Kubernetes client and restic runs increment (a
scrape of /metrics calls nothing upstream). `test_the_proof_sees_a_request_that_gets_through`
shows both move for the same request when it is well formed.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from http.client import HTTPResponse
from urllib.parse import urlsplit

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sandbox import faults
from tests.support.cast import ADMIN, POD, PROXY, SECURE_ENV, TOKEN
from tests.support.http import Reply
from tests.support.soteria import start_soteria, stop_soteria

BEARER = f"Bearer {TOKEN}"
SOURCE = {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    server = start_soteria(sandbox, tmp_path_factory.mktemp("hostile-data"), **SECURE_ENV,
                           SOTERIA_BACKUP_DRIVER="auto", SOTERIA_POLICY_SECRET_NAME="soteria-policies-hostile")
    yield server
    stop_soteria(server)


def raw(base_url: str, request: bytes, peer: str = POD) -> Reply:
    """Send these bytes as they are and read one answer."""
    url = urlsplit(base_url)
    with socket.create_connection((url.hostname, url.port), timeout=60, source_address=(peer, 0)) as sock:
        sock.sendall(request)
        response = HTTPResponse(sock)
        response.begin()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())


def request_bytes(method: str, target: bytes | str, headers: list[tuple], body: bytes | None = None) -> bytes:
    lines = [f"{method} ".encode() + (target if isinstance(target, bytes) else target.encode()) + b" HTTP/1.1",
             b"Host: 127.0.0.1", b"Connection: close"]
    for name, value in headers:
        lines.append((name if isinstance(name, bytes) else name.encode()) + b": "
                     + (value if isinstance(value, bytes) else value.encode("utf-8")))
    if body is not None and not any(n.lower() in ("content-length", b"content-length", "transfer-encoding")
                                    for n, _ in headers):
        lines.append(f"Content-Length: {len(body)}".encode())
    return b"\r\n".join(lines) + b"\r\n\r\n" + (body or b"")


@dataclass
class Case:
    id: str
    target: bytes | str
    status: int
    code: str
    body: bytes | dict | list | None = None
    method: str = "POST"
    headers: list = field(default_factory=lambda: [("Authorization", BEARER)])
    content_type: str | None = "application/json"
    peer: str = POD
    field: str | None = None
    answer: str = "application/json"  # the console answers pages


def _body(case: Case) -> bytes | None:
    if case.body is None or isinstance(case.body, bytes):
        return case.body
    return json.dumps(case.body).encode()


def _nested(depth: int) -> bytes:
    return ('{"namespace": "ai", "pvc": "llm-cache", "dry_run": true, "tags": ' + "[" * depth + "]" * depth
            + "}").encode()


ADMIN_FROM_PROXY = [(name, value) for name, value in ADMIN]


def _identity(**changes) -> list:
    """The admin's headers as the trusted proxy sends them, some values replaced (bytes as sent)."""
    headers = dict(ADMIN_FROM_PROXY)
    headers.update(changes)
    return list(headers.items())


NAMES = ["..", "../kube-system", "%2e%2e", "%2E%2E%2Fetc", "ai/../media", "ai\x00", "ai\n", "ai\r\nx: y", "ＡＩ", "ai\u202e",
         "AI", "ai ", "a" * 64, "ai;rm -rf /", "", "\u0430i"]  # the last: a Cyrillic а
PVC_NAMES = ["..", "../../etc/passwd", "llm-cache/..", "llm-cache\x00", "%2e%2e%2fllm-cache", "llm-cache\u2028",
             "llm-cache\t", "-llm-cache", "a" * 254, "llm..cache", "ｌｌｍ-cache"]
TAGS = ["team=a\r\nX-Injected: yes", "team=a\nX-Injected: yes", "a\x00b", "k=v\rw", "k=\u2028", "soteria.io/x=1",
        "policy=evil", "=v", "k=" + "v" * 64, "../k=v", "k=v\x7f", "k=v\x1b[31m"]

CASES = [
    # Bodies.
    Case("oversized body", "/v1/backup", 413, "body_too_large", body=b'{"namespace": "' + b"a" * 70_000 + b'"}'),
    Case("chunked body", "/v1/backup", 411, "length_required", body=b"5\r\n{\"a\":\r\n0\r\n\r\n",
         headers=[("Authorization", BEARER), ("Transfer-Encoding", "chunked")]),
    Case("non-numeric length", "/v1/backup", 400, "bad_request", body=b"{}",
         headers=[("Authorization", BEARER), ("Content-Length", "2x")]),
    Case("lists nested 5000 deep", "/v1/backup", 400, "invalid_json", body=_nested(5000)),
    Case("lists nested 30000 deep", "/v1/backup", 400, "invalid_json", body=_nested(30000)),
    Case("objects nested 6000 deep", "/v1/policies", 400, "invalid_json",
         body=b'{"namespace": "ai", "interval_hours": 24, "tags": ' + b'{"a": ' * 6000 + b"1" + b"}" * 6001),
    Case("lists nested 100 deep", "/v1/backup", 400, "invalid_input", body=_nested(100), field="tags"),
    Case("not JSON", "/v1/backup", 400, "invalid_json", body=b'{"namespace": "ai",'),
    Case("not UTF-8", "/v1/backup", 400, "invalid_json", body=b'{"namespace": "ai\xff\xfe", "pvc": "llm-cache"}'),
    Case("NaN", "/v1/backup", 400, "invalid_json", body=b'{"namespace": "ai", "pvc": "llm-cache", "dry_run": NaN}'),
    Case("a list, not an object", "/v1/backup", 400, "invalid_input", body=[SOURCE]),
    Case("an unknown field", "/v1/backup", 400, "invalid_input", body={**SOURCE, "snapshot_name": "../x"},
         field="snapshot_name"),
    Case("duplicate keys, the last wins", "/v1/backup", 400, "invalid_input",
         body=b'{"namespace": "ai", "pvc": "llm-cache", "dry_run": true, "namespace": "../etc"}', field="namespace"),
    *(Case(f"content type {ct}", "/v1/backup", 415, "unsupported_media_type", body=body, content_type=ct)
      for ct, body in (("text/plain", json.dumps(SOURCE).encode()),
                       ("application/x-www-form-urlencoded", b"namespace=ai&pvc=llm-cache&dry_run=true"),
                       ("multipart/form-data; boundary=x", b'--x\r\nContent-Disposition: form-data; name="namespace"'
                                                           b'\r\n\r\nai\r\n--x--\r\n'),
                       ("application/xml", b"<backup namespace='ai' pvc='llm-cache'/>"),
                       ("application/json-seq", json.dumps(SOURCE).encode()))),
    Case("no content type", "/v1/backup", 415, "unsupported_media_type", body=json.dumps(SOURCE).encode(),
         content_type=None),
    # Names: path traversal, NUL, control characters, look-alikes.
    *(Case(f"namespace {name!r}", "/v1/backup", 400, "invalid_input", body={**SOURCE, "namespace": name},
           field="namespace") for name in NAMES),
    *(Case(f"pvc {name!r}", "/v1/backup", 400, "invalid_input", body={**SOURCE, "pvc": name}, field="pvc")
      for name in PVC_NAMES),
    *(Case(f"restore target {name!r}", "/v1/restores", 400, "invalid_input",
           body={**SOURCE, "target_pvc": name}, field="target_pvc") for name in PVC_NAMES),
    *(Case(f"restore target namespace {name!r}", "/v1/restores", 400, "invalid_input",
           body={**SOURCE, "target_pvc": "copy", "target_namespace": name}, field="target_namespace")
      for name in NAMES if name),
    Case("drill of '../..'", "/v1/restore-drills", 400, "invalid_input", body={**SOURCE, "pvc": "../.."}, field="pvc"),
    # Tags: header injection, NUL, control characters, Soteria's own keys.
    *(Case(f"tag {tag!r}", "/v1/backup", 400, "invalid_input", body={**SOURCE, "tags": [tag]}, field="tags")
      for tag in TAGS),
    *(Case(f"policy tag {tag!r}", "/v1/policies", 400, "invalid_input",
           body={"namespace": "ai", "pvc": "llm-cache", "interval_hours": 24, "tags": [tag]}, field="tags")
      for tag in TAGS),
    # Query strings and paths.
    *(Case(f"GET {target}", target, 400, "invalid_input", method="GET", content_type=None, field=name)
      for target, name in (("/v1/backups?namespace=..&pvc=llm-cache", "namespace"),
                           ("/v1/backups?namespace=ai&pvc=..%2F..%2Fetc%2Fpasswd", "pvc"),
                           ("/v1/backups?namespace=ai%00&pvc=llm-cache", "namespace"),
                           ("/v1/backups?namespace=%2e%2e&pvc=llm-cache", "namespace"),
                           ("/v1/backups?namespace=ai&pvc=llm-cache%0d%0aX-Injected:%20yes", "pvc"),
                           ("/v1/inventory?namespace=ai%0AX-Injected:%20yes", "namespace"),
                           ("/v1/restore-drills?namespace=ai&pvc=%2e%2e", "pvc"),
                           ("/v1/restores?namespace=..%2F", "namespace"))),
    Case("DELETE a policy id '..%2F..%2Fetc'", "/v1/policies/..%2F..%2Fetc", 404, "not_found", method="DELETE",
         content_type=None),
    Case("DELETE a policy id 'ai%00'", "/v1/policies/ai%00", 400, "invalid_input", method="DELETE", content_type=None,
         field="id"),
    Case("DELETE a policy id 'ai.%2e%2e'", "/v1/policies/ai.%2e%2e", 400, "invalid_input", method="DELETE",
         content_type=None, field="id"),
    Case("DELETE a policy id 'ai%0a'", "/v1/policies/ai%0a", 400, "invalid_input", method="DELETE",
         content_type=None, field="id"),
    Case("DELETE policies of namespace '..'", "/v1/policies/?namespace=..&pvc=", 400, "invalid_input",
         method="DELETE", content_type=None, field="namespace"),
    Case("console PVC page '..%2F'", "/pvc/ai/..%2Fllm-cache/", 404, "", method="GET", content_type=None,
         headers=ADMIN_FROM_PROXY, peer=PROXY, answer="text/html; charset=utf-8"),
    Case("console PVC page 'ai%0a'", "/pvc/ai%0a/llm-cache/", 400, "", method="GET", content_type=None,
         headers=ADMIN_FROM_PROXY, peer=PROXY, answer="text/html; charset=utf-8"),
    Case("a NUL in the request line", b"/v1/inventory\x00", 400, "bad_request", method="GET", content_type=None),
    Case("a request line over 4094 bytes", "/v1/inventory?namespace=" + "a" * 5000, 414, "uri_too_long",
         method="GET", content_type=None),
    # Identity headers from the trusted proxy, and the bearer token.
    # gunicorn refuses a control character in any header value before Soteria reads it.
    Case("a control character in the user", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-User": "alice\x01"})),
    Case("DEL in the groups", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-Groups": "admin\x7f"})),
    Case("a tab in the email", "/v1/backup", 400, "bad_identity_header", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-Email": "alice@example.org\tadmin"})),
    Case("a user of 151 characters", "/v1/backup", 400, "bad_identity_header", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-User": "a" * 151})),
    Case("groups injected as a second header line", "/v1/backup", 400, "bad_identity_header", body=SOURCE,
         peer=PROXY, headers=[("X-Auth-Request-User", "mallory"), ("X-Auth-Request-Groups", "guests"),
                              ("X-Auth-Request-Groups", "admin")]),
    Case("a bare CR in the user", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-User": b"mallory\rX-Auth-Request-Groups: admin"})),
    Case("a bare LF in the groups", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-Groups": b"guests\nX-Auth-Request-Groups: admin"})),
    Case("a NUL in the user", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-User": b"alice\x00"})),
    Case("a folded groups header", "/v1/backup", 400, "bad_request", body=SOURCE, peer=PROXY,
         headers=_identity(**{"X-Auth-Request-Groups": b"guests\r\n admin"})),
    Case("identity spelled with underscores", "/v1/backup", 401, "not_authenticated", body=SOURCE, peer=PROXY,
         headers=[("X_Auth_Request_User", "alice"), ("X_Auth_Request_Groups", "admin")]),
    Case("the token twice", "/v1/backup", 400, "bad_identity_header", body=SOURCE,
         headers=[("Authorization", BEARER), ("Authorization", BEARER)]),
    Case("a NUL after the token", "/v1/backup", 400, "bad_request", body=SOURCE,
         headers=[("Authorization", BEARER.encode() + b"\x00")]),
    Case("a CR LF and a header after the token", "/v1/backup", 400, "bad_request", body=SOURCE,
         headers=[("Authorization", BEARER.encode() + b"\rX-Auth-Request-Groups: admin")]),
    Case("a vertical tab after the token", "/v1/backup", 400, "bad_request", body=SOURCE,
         headers=[("Authorization", BEARER.encode() + b"\x0b")]),
    Case("the token in other letters", "/v1/backup", 401, "authentication_failed", body=SOURCE,
         headers=[("Authorization", "Bearer " + TOKEN.replace("0", "０"))]),
]


def _upstream_calls(sandbox, server) -> tuple[int, float]:
    """(Longhorn calls the emulator counted, Soteria's soteria_upstream_requests_total summed)."""
    longhorn = sum(faults.calls(sandbox).values())
    scrape = raw(server.url, request_bytes("GET", "/metrics", []))
    assert scrape.status == 200, scrape.text[:300]
    soteria = sum(sample.value for family in text_string_to_metric_families(scrape.text)
                  for sample in family.samples if sample.name == "soteria_upstream_requests_total")
    return longhorn, soteria


def _send(server, case: Case) -> Reply:
    headers = list(case.headers)
    if case.content_type:
        headers.append(("Content-Type", case.content_type))
    return raw(server.url, request_bytes(case.method, case.target, headers, _body(case)), peer=case.peer)


def test_the_proof_sees_a_request_that_gets_through(server, sandbox):
    """The same dry run, well formed, moves both counters (so a refused one that moved neither
    really reached nothing)."""
    before = _upstream_calls(sandbox, server)
    reply = _send(server, Case("dry run", "/v1/backup", 200, "", body=SOURCE))
    assert reply.status == 200, reply.text
    after = _upstream_calls(sandbox, server)
    assert after[0] > before[0], "the dry run called no Longhorn route"
    assert after[1] > before[1], "the dry run counted no upstream call"


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_input_is_refused_before_any_upstream_call(server, sandbox, case):
    before = _upstream_calls(sandbox, server)
    reply = _send(server, case)
    after = _upstream_calls(sandbox, server)
    assert (reply.status, reply.headers.get("content-type")) == (case.status, case.answer), reply.text[:500]
    if case.answer == "application/json":
        body = reply.json()
        assert body["error"] == case.code and body["detail"], body
        if case.field:
            assert body.get("field") == case.field, body
    assert not [h for h in reply.headers if "injected" in h], reply.headers
    assert after == before, f"{case.id} reached upstream: Longhorn calls {before[0]} -> {after[0]}, " \
                            f"soteria_upstream_requests_total {before[1]} -> {after[1]}"
