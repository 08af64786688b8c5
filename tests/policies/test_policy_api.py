"""The policy API over the Secret store, at the client seam."""

import json

import pytest

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]


def _post(client, body):
    return client.post("/v1/policies", body, content_type="application/json")


def _stored(cluster):
    secret = cluster.secrets[("soteria", "soteria-policies")]
    return json.loads(secret.data["policies.json"])


def test_create_list_update_delete_round_trip(client, cluster):
    created = _post(client, {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6, "enabled": True})
    assert created.status_code == 201, created.content
    assert created.json()["id"] == "ai.llm-cache"
    assert _stored(cluster)["version"] == 1
    updated = _post(client, {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 12, "retain": 5,
                             "tags": ["tier=gold"]})
    assert updated.status_code == 200 and updated.json()["interval_hours"] == 12
    namespace_wide = _post(client, {"namespace": "ai", "interval_hours": 24})
    assert namespace_wide.json()["id"] == "ai" and namespace_wide.json()["pvc"] == ""
    listed = client.get("/v1/policies").json()["policies"]
    assert [p["id"] for p in listed] == ["ai", "ai.llm-cache"]
    assert listed[1]["retain"] == 5 and listed[1]["tags"] == ["tier=gold"]
    assert {"last_run_at", "last_result", "next_due_at"} <= set(listed[0])
    assert client.delete("/v1/policies/ai.llm-cache").status_code == 200
    assert [p["id"] for p in _stored(cluster)["policies"]] == ["ai"]
    assert client.delete("/v1/policies/ai.llm-cache").status_code == 404


def test_other_keys_of_the_secret_are_preserved(client, cluster):
    import base64

    cluster.create_secret("soteria", {"metadata": {"name": "soteria-policies", "labels": {"team": "ops"}},
                                      "data": {"notes.txt": base64.b64encode(b"keep me").decode()}})
    _post(client, {"namespace": "ai", "interval_hours": 1})
    secret = cluster.secrets[("soteria", "soteria-policies")]
    assert secret.data["notes.txt"] == b"keep me"
    assert secret.labels["team"] == "ops" and secret.labels["app.kubernetes.io/managed-by"] == "soteria"


@pytest.mark.parametrize("body,field", [
    ({"namespace": "ai", "interval_hours": 0}, "interval_hours"),
    ({"namespace": "ai", "interval_hours": -3}, "interval_hours"),
    ({"namespace": "ai", "interval_hours": 100000}, "interval_hours"),
    ({"namespace": "ai", "interval_hours": "6"}, "interval_hours"),
    ({"namespace": "ai", "interval_hours": True}, "interval_hours"),
    ({"namespace": "ai"}, "interval_hours"),
    ({"namespace": "Ai", "interval_hours": 1}, "namespace"),
    ({"namespace": "ai", "pvc": "x_y", "interval_hours": 1}, "pvc"),
    ({"namespace": "ai", "interval_hours": 1, "retain": 0}, "retain"),
    ({"namespace": "ai", "interval_hours": 1, "retain": 2.5}, "retain"),
    ({"namespace": "ai", "interval_hours": 1, "enabled": "yes"}, "enabled"),
    ({"namespace": "ai", "interval_hours": 1, "tags": ["policy=x"]}, "tags"),
    ({"namespace": "ai", "interval_hours": 1, "tags": ["bad key"]}, "tags"),
    ({"namespace": "ai", "interval_hours": 1, "colour": "red"}, "colour"),
])
def test_bad_input_is_400_naming_the_field_and_nothing_is_written(client, cluster, body, field):
    response = _post(client, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert cluster.secrets == {}


@pytest.mark.parametrize("content", [b"{not json", b'{"version": 2, "policies": []}', b"[]"])
def test_an_unreadable_secret_is_503_and_never_overwritten(client, cluster, content):
    import base64

    cluster.create_secret("soteria", {"metadata": {"name": "soteria-policies"},
                                      "data": {"policies.json": base64.b64encode(content).decode()}})
    listed = client.get("/v1/policies")
    assert listed.status_code == 503 and listed.json()["error"] == "policy_store_unreadable"
    assert "will not overwrite" in listed.json()["detail"] or "not valid JSON" in listed.json()["detail"]
    assert _post(client, {"namespace": "ai", "interval_hours": 1}).status_code == 503
    assert cluster.secrets[("soteria", "soteria-policies")].data["policies.json"] == content


def test_policy_changes_are_recorded_as_events_on_the_secret(client, cluster):
    _post(client, {"namespace": "ai", "interval_hours": 6})
    client.delete("/v1/policies/ai")
    reasons = [(e["involvedObject"]["kind"], e["reason"]) for e in cluster.events]
    assert reasons == [("Secret", "PolicyCreated"), ("Secret", "PolicyDeleted")]


def test_the_contracts_delete_with_query_parameters_removes_one_policy(client, cluster):
    _post(client, {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6})
    _post(client, {"namespace": "ai", "interval_hours": 24})
    deleted = client.delete("/v1/policies/?namespace=ai&pvc=llm-cache")
    assert deleted.status_code == 200 and deleted.json()["id"] == "ai.llm-cache"
    assert client.delete("/v1/policies/?namespace=ai").json()["id"] == "ai"
    assert _stored(cluster)["policies"] == []
    missing = client.delete("/v1/policies/?namespace=ai")
    assert missing.status_code == 404
    bad = client.delete("/v1/policies/?namespace=Not_A_Name")
    assert bad.status_code == 400 and bad.json()["field"] == "namespace"
