"""Soteria's own label keys cannot come from a user's tags.

Retention deletes a policy's older backups by the `policy` label: a user with backup
rights who could tag a hand-made backup `policy=<id>` would push the policy's real
backups out. Real gunicorn, auth required, on the sandbox.
"""

import re
from urllib.parse import urlencode

import pytest

from sandbox import faults
from tests.support import cast
from tests.support.cast import PROXY
from tests.support.http import call

RESERVED = ["policy=ai.llm-cache", "policy=ai", "soteria.io/restored-from=media.photos", "soteria.io/owner"]


def _post(server, who, path, body):
    return call(server.url, "POST", path, headers=who, json=body, peer=PROXY)


def _policy_ids(server) -> set[str]:
    reply = call(server.url, "GET", "/v1/policies", headers=cast.ADMIN, peer=PROXY)
    assert reply.status == 200, reply.text
    return {p["id"] for p in reply.json()["policies"]}


def _console_form_post(server, who, page: str, action: str, fields: dict, before_post=lambda: None):
    """Open a console page for its CSRF token and cookie, then post its form as a browser would."""
    page_reply = call(server.url, "GET", page, headers=who, peer=PROXY)
    assert page_reply.status == 200, page_reply.text
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page_reply.text).group(1)
    cookie = page_reply.headers["set-cookie"].split(";")[0]
    before_post()
    body = urlencode({"csrfmiddlewaretoken": token, **fields}).encode()
    return call(server.url, "POST", action, peer=PROXY, body=body,
                headers=[*who, ("Cookie", cookie), ("Content-Type", "application/x-www-form-urlencoded")])


def _flash(server, who, page: str, reply) -> str:
    """The page a redirect leads to, with the message the redirect left in its cookie."""
    messages = reply.headers.get("set-cookie", "").split(";")[0]
    return call(server.url, "GET", page, headers=[*who, ("Cookie", messages)], peer=PROXY).text


@pytest.mark.parametrize("tag", RESERVED)
def test_backup_refuses_soteria_label_keys_before_calling_longhorn(secure_server, sandbox, tag):
    faults.reset_calls(sandbox)
    reply = _post(secure_server, cast.SCOPED, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache",
                                                             "tags": ["reason=upgrade", tag]})
    assert reply.status == 400, reply.text
    body = reply.json()
    assert body["error"] == "invalid_input" and body["field"] == "tags"
    assert repr(tag) in body["detail"] and "Soteria itself" in body["detail"]
    assert faults.calls(sandbox) == {}, "Longhorn was called"


def test_namespace_backup_refuses_a_policy_tag(secure_server, sandbox):
    faults.reset_calls(sandbox)
    reply = _post(secure_server, cast.SCOPED, "/v1/backup/namespace", {"namespace": "ai", "tags": ["policy=ai"]})
    assert reply.status == 400 and reply.json()["field"] == "tags"
    assert "'policy=ai'" in reply.json()["detail"]
    assert faults.calls(sandbox) == {}


def test_ordinary_tags_still_label_a_backup(secure_server):
    reply = _post(secure_server, cast.SCOPED, "/v1/backup", {"namespace": "ai", "pvc": "notebooks",
                                                             "tags": ["policy-review=q3", "team.example/owner=ai"],
                                                             "dry_run": True})
    assert reply.status == 200, reply.text
    assert reply.json()["plan"][1]["args"]["labels"] == {"policy-review": "q3", "team.example/owner": "ai"}


def test_console_backup_form_refuses_a_policy_tag(secure_server, sandbox):
    page = "/pvc/ai/llm-cache/"
    reply = _console_form_post(secure_server, cast.SCOPED, page, "/pvc/ai/llm-cache/backup",
                               {"tags": "reason=upgrade, policy=ai.llm-cache"},
                               before_post=lambda: faults.reset_calls(sandbox))
    assert reply.status == 302 and reply.headers["location"].endswith(page)
    assert faults.calls(sandbox) == {}, "Longhorn was called"
    shown = _flash(secure_server, cast.SCOPED, page, reply)
    assert "Backup refused" in shown and "policy=ai.llm-cache" in shown


@pytest.mark.parametrize("tag", ["policy=media", "soteria.io/owner=me"])
def test_policy_api_refuses_soteria_label_keys(secure_server, tag):
    reply = _post(secure_server, cast.ADMIN, "/v1/policies", {"namespace": "media", "pvc": "reserved-label-probe",
                                                              "interval_hours": 24, "enabled": False,
                                                              "tags": [tag]})
    assert reply.status == 400, reply.text
    assert reply.json()["field"] == "tags" and repr(tag) in reply.json()["detail"]
    assert "media.reserved-label-probe" not in _policy_ids(secure_server)


def test_console_policy_form_refuses_soteria_label_keys(secure_server):
    reply = _console_form_post(secure_server, cast.ADMIN, "/policies/", "/policies/save",
                               {"namespace": "media", "pvc": "reserved-label-probe", "interval_hours": "24",
                                "tags": "tier=gold, soteria.io/owner=me"})
    assert reply.status == 302
    assert "Policy not saved" in _flash(secure_server, cast.ADMIN, "/policies/", reply)
    assert "media.reserved-label-probe" not in _policy_ids(secure_server)
