"""A scoped identity sees only its namespaces on every list: policies and restores too
(the API and the console), through Django's HTTP stack at the client seam."""

import pytest

from policies.services import refresh_inventory
from tests.support import cast

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("policy_secret_settings")]


def meta(identity) -> dict:
    """The cast's HTTP headers as Django's test client takes them."""
    return {f"HTTP_{name.upper().replace('-', '_')}": value for name, value in identity}


def post(client, identity, path, body):
    return client.post(path, body, content_type="application/json", **meta(identity))


@pytest.fixture
def policies(client, auth_on, world):
    for body in ({"namespace": "ai", "interval_hours": 24},
                 {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6},
                 {"namespace": "media", "interval_hours": 12},
                 {"namespace": "media", "pvc": "photos", "interval_hours": 1}):
        assert post(client, cast.ADMIN, "/v1/policies", body).status_code == 201
    refresh_inventory()  # the worker's refresh: due times come from the stored inventory


@pytest.fixture
def restored(client, auth_on, world):
    """Three restores by an admin: ai into ai-restore, media into ai-restore, media into media-restore."""
    for source, target_namespace, target in (("ai/llm-cache", "ai-restore", "from-ai"),
                                             ("media/photos", "ai-restore", "from-media"),
                                             ("media/photos", "media-restore", "media-copy")):
        namespace, pvc = source.split("/")
        response = post(client, cast.ADMIN, "/v1/restores", {"namespace": namespace, "pvc": pvc,
                                                             "target_namespace": target_namespace,
                                                             "target_pvc": target})
        assert response.status_code == 200, response.content


def test_scoped_identity_lists_only_the_policies_of_its_namespaces(client, policies):
    scoped = client.get("/v1/policies", **meta(cast.SCOPED))
    assert scoped.status_code == 200
    assert [p["id"] for p in scoped.json()["policies"]] == ["ai", "ai.llm-cache"]
    assert scoped.json()["policies"][1]["next_due_at"] is not None  # its own PVCs still count
    admin = client.get("/v1/policies", **meta(cast.ADMIN))
    assert [p["id"] for p in admin.json()["policies"]] == ["ai", "ai.llm-cache", "media", "media.photos"]


def test_console_policies_page_shows_a_scoped_identity_only_its_namespaces(client, policies):
    page = client.get("/policies/", **meta(cast.SCOPED)).content.decode()
    assert 'data-policy="ai"' in page and 'data-policy="ai.llm-cache"' in page
    assert 'data-policy="media' not in page and "media/" not in page
    admin = client.get("/policies/", **meta(cast.ADMIN)).content.decode()
    assert 'data-policy="media.photos"' in admin


def test_restores_show_only_targets_the_caller_may_view_and_hide_other_sources(client, restored):
    rows = client.get("/v1/restores", **meta(cast.SCOPED)).json()["restores"]
    assert [(r["namespace"], r["pvc"], r["source"]) for r in rows] == [
        ("ai-restore", "from-ai", "ai/llm-cache"), ("ai-restore", "from-media", "")]
    admin = client.get("/v1/restores", **meta(cast.ADMIN)).json()["restores"]
    assert [(r["namespace"], r["pvc"], r["source"]) for r in admin] == [
        ("ai-restore", "from-ai", "ai/llm-cache"), ("ai-restore", "from-media", "media/photos"),
        ("media-restore", "media-copy", "media/photos")]


def test_console_restores_page_hides_namespaces_the_caller_may_not_view(client, restored):
    page = client.get("/restores/", **meta(cast.SCOPED)).content.decode()
    assert 'data-pvc="ai-restore/from-media"' in page and 'data-pvc="ai-restore/from-ai"' in page
    assert "media/photos" not in page and "media-restore" not in page


def test_a_scoped_restorer_cannot_restore_another_namespaces_backup_by_url(client, auth_on, world):
    url = "s3://b@r/?backup=backup-pvc-media-photos-0&volume=pvc-media-photos"
    response = post(client, cast.SCOPED, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache",
                                                          "target_namespace": "ai-restore", "target_pvc": "stolen",
                                                          "backup_url": url})
    assert response.status_code == 400 and response.json()["field"] == "backup_url"
    assert world.mutating_calls == {}
