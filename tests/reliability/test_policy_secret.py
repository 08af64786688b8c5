"""Issue 17: the policy Secret spoiled by someone else, on the sandbox with real gunicorn and a
real `manage.py qcluster`.

Someone deletes the Secret, empties it, blanks its key or writes invalid JSON into it. Soteria
must say so (the API's 503, soteria_policy_store_errors_total, the evaluation's error), never
act as if there were no policies (a new policy must not start a document of its own over the
lost ones), and come back through the API: POST /v1/policy-store/recover writes back the
policies it last read (and keeps unreadable content under another key of the Secret).
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.support.http import http_json, metric
from tests.support.kube import forget_policy_lease, kube
from tests.support.polling import wait_for_passing
from tests.support.reliability import size
from tests.support.soteria import Worker, start_soteria, stop_soteria

SECRET = "soteria-policies-reliability"
POLICIES = [{"namespace": "rel-secret", "interval_hours": 24},
            {"namespace": "rel-secret", "pvc": "db", "interval_hours": 6, "retain": 3, "tags": ["tier=gold"]},
            {"namespace": "rel-secret-2", "interval_hours": 12, "enabled": False}]
IDS = ["rel-secret", "rel-secret-2", "rel-secret.db"]


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    """Soteria's web (gunicorn, two workers) and queue worker, keeping policies in a Secret of
    their own."""
    server = start_soteria(sandbox, tmp_path_factory.mktemp("policy-secret"), workers=2,
                           SOTERIA_POLICY_SECRET_NAME=SECRET)
    worker = Worker(server)
    yield server, worker
    worker.stop()
    stop_soteria(server)


def _stored(api) -> dict | None:
    secret = api.read_namespaced_secret(SECRET, "soteria")
    return {k: base64.b64decode(v) for k, v in (secret.data or {}).items()}


def _replace_data(api, data: dict[str, bytes]) -> None:
    """Someone else's write (kubectl edit): the Secret keeps its name, its data is `data`."""
    secret = api.read_namespaced_secret(SECRET, "soteria")
    secret.data = {k: base64.b64encode(v).decode() for k, v in data.items()}
    api.replace_namespaced_secret(SECRET, "soteria", secret)


def _delete(api) -> None:
    api.delete_namespaced_secret(SECRET, "soteria")


def _empty(api) -> None:
    _replace_data(api, {})


def _blank(api) -> None:
    _replace_data(api, {"policies.json": b""})


def _invalid(api) -> None:
    _replace_data(api, {"policies.json": b'{"version": 1, "policies": [{"id": "rel-secret", '})


SPOILINGS = {"deleted": (_delete, "policy_store_missing", "missing"),
             "emptied": (_empty, "policy_store_missing", "missing"),
             "blanked": (_blank, "policy_store_unreadable", "invalid_json"),
             "invalid JSON": (_invalid, "policy_store_unreadable", "invalid_json")}


@pytest.mark.parametrize("how", size(["deleted"], list(SPOILINGS)))
def test_a_spoiled_policy_secret_is_reported_and_recovered_from_the_api(sandbox, server, how):
    server, worker = server
    spoil, code, reason = SPOILINGS[how]
    api = kube(sandbox)
    for body in POLICIES:
        status, answer = http_json(f"{server.url}/v1/policies", "POST", body)
        assert status in (200, 201), answer
    status, listed = http_json(f"{server.url}/v1/policies")
    assert status == 200 and sorted(p["id"] for p in listed["policies"]) == IDS
    errors_before = metric(server.url, "soteria_policy_store_errors_total", reason=reason)

    spoil(api)
    left = _stored(api) if how != "deleted" else None

    # Every web worker reports it (the last policies read are remembered in the shared database).
    for _ in range(4):
        status, answer = http_json(f"{server.url}/v1/policies")
        assert status == 503 and answer["error"] == code, answer
    # A new policy does not start a document over the lost ones.
    status, answer = http_json(f"{server.url}/v1/policies", "POST", {"namespace": "rel-new", "interval_hours": 1})
    assert status == 503 and answer["error"] == code, answer
    if how == "deleted":
        assert not api.list_namespaced_secret("soteria", field_selector=f"metadata.name={SECRET}").items
    else:
        assert _stored(api) == left  # not overwritten
    assert metric(server.url, "soteria_policy_store_errors_total", reason=reason) >= errors_before + 5
    # The worker's evaluation fails with the same error instead of finding nothing to do.
    forget_policy_lease(sandbox)  # this worker leads, whichever evaluator of another test led before
    evaluated_before = metric(server.url, "soteria_policy_evaluations_total", outcome="error")
    with pytest.raises(AssertionError, match="failed"):
        worker.run("policies.tasks.evaluate_policies", timeout=120)
    # (the worker's own schedule may have run it too, with the same outcome)
    assert metric(server.url, "soteria_policy_evaluations_total", outcome="error") >= evaluated_before + 1

    status, answer = http_json(f"{server.url}/v1/policy-store/recover", "POST", {})
    assert status == 200, answer
    assert sorted(p["id"] for p in answer["policies"]) == IDS
    stored = _stored(api)
    if reason == "invalid_json":  # what was there is kept, under another key
        assert stored[answer["kept_unreadable_as"]] == left["policies.json"]
    else:
        assert answer["kept_unreadable_as"] == ""
    document = json.loads(stored["policies.json"])
    assert sorted(p["id"] for p in document["policies"]) == IDS
    [db] = [p for p in document["policies"] if p["id"] == "rel-secret.db"]
    assert (db["interval_hours"], db["retain"], db["tags"]) == (6.0, 3, ["tier=gold"])

    def listed_again():
        status, listed = http_json(f"{server.url}/v1/policies")
        assert status == 200 and sorted(p["id"] for p in listed["policies"]) == IDS, listed
        return True
    wait_for_passing(listed_again, 30, "the policies listed again")
    assert worker.run("policies.tasks.evaluate_policies", timeout=120)["leader"] is True
    reasons = {e.reason for e in api.list_namespaced_event("soteria").items if e.involved_object.name == SECRET}
    assert "PolicyStoreRecovered" in reasons
    # Recovering again has nothing to do.
    status, answer = http_json(f"{server.url}/v1/policy-store/recover", "POST", {})
    assert status == 409 and answer["error"] == "nothing_to_recover", answer

