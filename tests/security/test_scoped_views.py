"""A scoped identity (erin, namespace ai only) sees nothing of other namespaces on the
policies and restores lists, in the API and the console. Real gunicorn, auth required,
on the sandbox."""

import pytest

from tests.support import cast
from tests.support.cast import PROXY
from tests.support.http import call
from tests.support.polling import wait_for

PROBE = "scoped-view-probe"  # a PVC name no seeded namespace has: the policies govern nothing


def _get(server, who, path):
    reply = call(server.url, "GET", path, headers=who, peer=PROXY)
    assert reply.status == 200, reply.text
    return reply


@pytest.fixture
def policies(secure_server):
    """Disabled policies in ai and media (an evaluator would do nothing with them), removed afterwards."""
    ids = []
    for namespace in ("ai", "media"):
        reply = call(secure_server.url, "POST", "/v1/policies", headers=cast.ADMIN, peer=PROXY,
                     json={"namespace": namespace, "pvc": PROBE, "interval_hours": 24, "enabled": False})
        assert reply.status in (200, 201), reply.text
        ids.append(reply.json()["id"])
    yield ids
    for policy_id in ids:
        call(secure_server.url, "DELETE", f"/v1/policies/{policy_id}", headers=cast.ADMIN, peer=PROXY,
             json={})


@pytest.fixture
def restored_from_media(secure_server, sandbox):
    """media/photos restored by an admin into ai (which erin may view); deleted afterwards."""
    target = "cross-ns-restore"
    reply = call(secure_server.url, "POST", "/v1/restores", headers=cast.ADMIN, peer=PROXY,
                 json={"namespace": "media", "pvc": "photos", "target_namespace": "ai", "target_pvc": target})
    assert reply.status == 200, reply.text
    volume = reply.json()["volume"]
    yield target
    _delete_restore(sandbox, "ai", target, volume)


def _delete_restore(sandbox, namespace, pvc, volume):
    import urllib.request

    from kubernetes import client, config

    core = client.CoreV1Api(config.new_client_from_config(config_file=str(sandbox.kubeconfig)))
    core.delete_namespaced_persistent_volume_claim(pvc, namespace)
    core.delete_persistent_volume(volume)
    urllib.request.urlopen(urllib.request.Request(f"{sandbox.longhorn_url}/v1/volumes/{volume}", method="DELETE"),
                           timeout=10).close()


def test_scoped_identity_lists_only_the_policies_of_its_namespaces(secure_server, policies):
    scoped = _get(secure_server, cast.SCOPED, "/v1/policies").json()["policies"]
    assert f"ai.{PROBE}" in {p["id"] for p in scoped}
    assert {p["namespace"] for p in scoped} == {"ai"}
    admin = _get(secure_server, cast.ADMIN, "/v1/policies").json()["policies"]
    assert {f"ai.{PROBE}", f"media.{PROBE}"} <= {p["id"] for p in admin}


def test_console_policies_page_shows_a_scoped_identity_only_its_namespaces(secure_server, policies):
    page = _get(secure_server, cast.SCOPED, "/policies/").text
    assert f'data-policy="ai.{PROBE}"' in page
    assert f'data-policy="media.{PROBE}"' not in page and "media/" not in page
    assert f'data-policy="media.{PROBE}"' in _get(secure_server, cast.ADMIN, "/policies/").text


def test_restores_list_hides_a_source_namespace_the_caller_may_not_view(secure_server, restored_from_media):
    def row(who):
        rows = _get(secure_server, who, "/v1/restores").json()["restores"]
        return next((r for r in rows if (r["namespace"], r["pvc"]) == ("ai", restored_from_media)), None)

    assert wait_for(lambda: row(cast.ADMIN), what="the restore listed")["source"] == "media/photos"
    scoped = row(cast.SCOPED)
    assert scoped is not None and scoped["source"] == ""
    rows = _get(secure_server, cast.SCOPED, "/v1/restores").json()["restores"]
    assert {r["namespace"] for r in rows} == {"ai"}
    assert "media" not in _get(secure_server, cast.SCOPED, "/v1/restores").text


def test_console_restores_page_hides_a_source_namespace_the_caller_may_not_view(secure_server, restored_from_media):
    page = _get(secure_server, cast.SCOPED, "/restores/").text
    assert f'data-pvc="ai/{restored_from_media}"' in page
    assert "media/photos" not in page
    assert "media/photos" in _get(secure_server, cast.ADMIN, "/restores/").text
