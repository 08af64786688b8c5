"""HTTP in tests.

`call`: raw HTTP against a real server: any header (repeated ones too), any body, any
source address. urllib and requests merge or normalise what an attacker would not; these
tests need the bytes as sent. `peer` picks the loopback address the connection comes
from, so one machine can play both the trusted proxy and an ordinary pod.
`http`, `http_json`: one plain request on a new connection. `post`: JSON through
Django's test client.
"""

from __future__ import annotations

import json as jsonlib
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.client import HTTPConnection
from urllib.parse import urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return jsonlib.loads(self.body or b"null")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def call(base_url: str, method: str, path: str, *, headers=(), json=None, body: bytes | None = None,
         peer: str = "127.0.0.1", timeout: float = 60) -> Reply:
    """One request. `headers` is a dict or a list of (name, value) pairs (repeat a name to send it twice)."""
    url = urlsplit(base_url)
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers)
    if json is not None:
        body = jsonlib.dumps(json).encode()
        pairs.append(("Content-Type", "application/json"))
    conn = HTTPConnection(url.hostname, url.port, timeout=timeout, source_address=(peer, 0))
    try:
        conn.putrequest(method, path)
        for name, value in pairs:
            conn.putheader(name, value)
        if body is not None:
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()


def metric(base_url: str, name: str, **labels) -> float:
    """One sample of Soteria's /metrics (0 when absent), e.g. metric(url, "soteria_authz_denials_total", reason="csrf")."""
    from prometheus_client.parser import text_string_to_metric_families

    text = call(base_url, "GET", "/metrics").text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def http(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30.0):
    """One request on a new connection (so gunicorn's workers share them). Returns
    (status, headers, body bytes); HTTP errors are answers, not exceptions."""
    data = jsonlib.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30.0):
    status, _, raw = http(url, method, body, timeout)
    return status, jsonlib.loads(raw or b"{}")


def post(client, path, body):
    """A JSON POST through Django's test client."""
    return client.post(path, body, content_type="application/json")
