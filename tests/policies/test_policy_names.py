"""Policies on PVCs whose names have dots or 253 characters: ids stay unambiguous because a
namespace (a DNS label) has no dots, so the first dot of an id ends the namespace."""

import pytest

from policies.types import policy_id, policy_namespace, validate
from soteria_site.core.errors import InvalidInput

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]
DOTTED = "data.primary-2026"
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


def _post(client, body):
    return client.post("/v1/policies", body, content_type="application/json")


def _ids(client) -> list[str]:
    return [p["id"] for p in client.get("/v1/policies").json()["policies"]]


@pytest.mark.parametrize("namespace,pvc", [
    ("ai", ""), ("ai", "db"), ("ai", DOTTED), ("ai", "prod.db.x"), ("ai-prod", "db"), ("n" * 63, LONGEST),
    ("ai", "0.1.2"),
])
def test_the_first_dot_of_an_id_ends_the_namespace(namespace, pvc):
    pk = policy_id(namespace, pvc)
    assert policy_namespace(pk) == namespace
    assert pk.partition(".")[2] == pvc


def test_ids_of_distinct_policies_are_distinct():
    pairs = [("ai", ""), ("ai", "prod"), ("ai", "prod.db"), ("ai-prod", ""), ("ai-prod", "db"), ("ai", "prod-db")]
    assert len({policy_id(n, p) for n, p in pairs}) == len(pairs)


def test_a_dotted_pvc_policy_is_created_listed_and_deleted_by_id(client, cluster):
    created = _post(client, {"namespace": "ai", "pvc": DOTTED, "interval_hours": 6})
    assert created.status_code == 201, created.content
    assert created.json()["id"] == f"ai.{DOTTED}" and created.json()["pvc"] == DOTTED
    _post(client, {"namespace": "ai", "pvc": "data", "interval_hours": 6})
    _post(client, {"namespace": "ai", "interval_hours": 24})
    assert _ids(client) == ["ai", "ai.data", f"ai.{DOTTED}"]
    assert client.delete(f"/v1/policies/ai.{DOTTED}").status_code == 200
    assert _ids(client) == ["ai", "ai.data"]


@pytest.mark.parametrize("pvc", [DOTTED, LONGEST])
def test_the_contracts_delete_by_query_takes_a_dotted_or_long_pvc(client, cluster, pvc):
    _post(client, {"namespace": "ai", "pvc": "data", "interval_hours": 6})
    assert _post(client, {"namespace": "ai", "pvc": pvc, "interval_hours": 6}).status_code == 201
    response = client.delete(f"/v1/policies/?namespace=ai&pvc={pvc}")
    assert response.status_code == 200, response.content
    assert response.json()["id"] == f"ai.{pvc}"
    assert _ids(client) == ["ai.data"]
    assert client.delete(f"/v1/policies/?namespace=ai&pvc={pvc}").status_code == 404


def test_a_254_character_pvc_is_refused_naming_the_field(client, cluster):
    response = _post(client, {"namespace": "ai", "pvc": LONGEST + "d", "interval_hours": 6})
    assert response.status_code == 400 and response.json()["field"] == "pvc"
    response = client.delete(f"/v1/policies/?namespace=ai&pvc={LONGEST}d")
    assert response.status_code == 400 and response.json()["field"] == "pvc"
    with pytest.raises(InvalidInput) as refused:
        validate("ai", LONGEST + "d", 6, True, None, [])
    assert refused.value.extra["field"] == "pvc" and "longer than 253" in refused.value.detail


def test_a_dotted_namespace_is_refused(client, cluster):
    response = _post(client, {"namespace": "ai.prod", "pvc": "db", "interval_hours": 6})
    assert response.status_code == 400 and response.json()["field"] == "namespace"


def test_the_console_deletes_a_dotted_pvc_policy_by_id(client, cluster):
    _post(client, {"namespace": "ai", "pvc": DOTTED, "interval_hours": 6})
    plan = client.post(f"/policies/ai.{DOTTED}/delete")  # the plan: nothing deleted yet
    assert plan.status_code == 200 and _ids(client) == [f"ai.{DOTTED}"]
    response = client.post(f"/policies/ai.{DOTTED}/delete", {"confirm": "on", "digest": plan.context["digest"]},
                           follow=True)
    assert response.status_code == 200
    assert _ids(client) == []
