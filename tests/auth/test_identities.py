"""Who gets in, who does not, and what each identity may do (through Django's HTTP stack)."""

import pytest

from tests.support.cast import CAST

pytestmark = pytest.mark.django_db


def get(client, who, path):
    return client.get(path, **CAST[who].headers)


def post(client, who, path, body):
    return client.post(path, body, content_type="application/json", **CAST[who].headers)


def test_auth_off_everything_is_open_and_anonymous(client, world):
    assert client.get("/v1/inventory").status_code == 200
    assert client.get("/v1/whoami").json()["user"] == "anonymous"
    body = post(client, "nobody", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"}).json()
    assert body["requested_by"] == "anonymous"


@pytest.mark.parametrize("path", ["/healthz", "/metrics"])
def test_public_endpoints_stay_public(client, auth_on, path):
    assert client.get(path).status_code == 200


@pytest.mark.parametrize("who", ["admin", "maintenance", "semicolons", "token"])
def test_allowed_identities_may_do_everything(client, auth_on, world, who):
    assert get(client, who, "/v1/inventory").status_code == 200
    response = post(client, who, "/v1/backup", {"namespace": "media", "pvc": "photos", "dry_run": True})
    assert response.status_code == 200, response.content
    assert response.json()["requested_by"] == CAST[who].name


def test_whoami_reports_identity_method_permissions_and_scopes(client, auth_on, world):
    body = get(client, "admin", "/v1/whoami").json()
    assert body == {"user": "alice", "email": "alice@example.org", "groups": ["admin"], "auth": "header",
                    "permissions": ["manage_policies", "run_backup", "run_restore", "view_inventory"],
                    "namespaces": {"view": None, "backup": None, "restore": None}}
    scoped = get(client, "scoped", "/v1/whoami").json()
    assert scoped["permissions"] == ["run_backup", "run_restore", "view_inventory"]
    assert scoped["namespaces"] == {"view": ["ai", "ai-restore"], "backup": ["ai"], "restore": ["ai", "ai-restore"]}
    assert get(client, "token", "/v1/whoami").json()["auth"] == "token"


def test_groups_are_normalised_and_mirrored_into_django(client, auth_on, world):
    from django.contrib.auth.models import User

    body = get(client, "semicolons", "/v1/whoami").json()
    assert body["groups"] == ["devs", "maintenance"] and "run_restore" in body["permissions"]
    user = User.objects.get(username="carol")
    assert sorted(user.groups.values_list("name", flat=True)) == ["devs", "maintenance"]


def test_permissions_come_from_the_request_never_from_rows(client, auth_on, world):
    """A mirrored row with an admin group grants nothing: the groups the proxy sends now decide."""
    from django.contrib.auth.models import Group, User

    user = User.objects.create(username="mallory")
    user.groups.set([Group.objects.create(name="admin")])
    assert get(client, "outsider", "/v1/inventory").status_code == 403
    assert sorted(User.objects.get(username="mallory").groups.values_list("name", flat=True)) == ["guests"]


def test_a_known_identity_touches_the_database_only_when_its_groups_change(client, auth_on, world):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    get(client, "admin", "/v1/whoami")
    with CaptureQueriesContext(connection) as seen:
        assert get(client, "admin", "/v1/whoami").status_code == 200
    assert [q["sql"] for q in seen.captured_queries] == []
    changed = {**CAST["admin"].headers, "HTTP_X_AUTH_REQUEST_GROUPS": "admin,ops"}
    with CaptureQueriesContext(connection) as seen:
        assert client.get("/v1/whoami", **changed).status_code == 200
    assert any(q["sql"].startswith("INSERT") for q in seen.captured_queries)


def test_public_paths_do_no_identity_work(client, auth_on, world):
    from django.contrib.auth.models import User
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as seen:
        assert client.get("/healthz", **CAST["admin"].headers).status_code == 200
    assert seen.captured_queries == [] and not User.objects.exists()


def test_no_identity_is_401_json_for_the_api_and_a_page_for_the_console(client, auth_on, denials):
    api = client.get("/v1/inventory")
    assert api.status_code == 401 and api.json()["error"] == "not_authenticated"
    console = client.get("/")
    assert console.status_code == 401 and b"Sign-in required" in console.content
    assert client.get("/v1/openapi").status_code == 401
    assert denials.delta() == {"no_identity": 3}


def test_outsider_is_403_and_counted(client, auth_on, world, denials):
    assert get(client, "outsider", "/v1/inventory").status_code == 403
    assert get(client, "outsider", "/").status_code == 403
    assert denials.delta() == {"group_not_allowed": 2}


def test_wrong_token_is_401_and_counted(client, auth_on, world, denials):
    response = get(client, "wrong_token", "/v1/inventory")
    assert response.status_code == 401 and response.json()["error"] == "authentication_failed"
    assert denials.delta() == {"bad_token": 1}


def test_viewer_reads_but_may_not_back_up_or_restore(client, auth_on, world, denials):
    assert get(client, "viewer", "/v1/inventory").status_code == 200
    assert get(client, "viewer", "/v1/backups?namespace=media&pvc=photos").status_code == 200
    assert post(client, "viewer", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"}).status_code == 403
    assert post(client, "viewer", "/v1/restores", {"namespace": "ai", "pvc": "llm-cache",
                                                    "target_pvc": "x"}).status_code == 403
    assert world.mutating_calls == {}
    assert denials.delta() == {"permission_denied": 2}


def test_scoped_identity_sees_and_acts_only_in_its_namespaces(client, auth_on, world, denials):
    inventory = get(client, "scoped", "/v1/inventory").json()
    assert [ns["name"] for ns in inventory["namespaces"]] == ["ai"]
    assert get(client, "scoped", "/v1/inventory?namespace=media").status_code == 403
    assert get(client, "scoped", "/v1/backups?namespace=media&pvc=photos").status_code == 403
    assert post(client, "scoped", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True}
                ).status_code == 200
    assert post(client, "scoped", "/v1/backup", {"namespace": "media", "pvc": "photos"}).status_code == 403
    # Restores check both the source and the target namespace.
    assert post(client, "scoped", "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_namespace":
                                                   "ai-restore", "target_pvc": "r", "dry_run": True}).status_code == 200
    assert post(client, "scoped", "/v1/restores", {"namespace": "ai", "pvc": "llm-cache", "target_namespace":
                                                   "media-restore", "target_pvc": "r"}).status_code == 403
    assert post(client, "scoped", "/v1/restores", {"namespace": "media", "pvc": "photos", "target_namespace":
                                                   "ai-restore", "target_pvc": "r"}).status_code == 403
    assert world.mutating_calls == {}
    assert denials.delta() == {"namespace_not_allowed": 5}


def test_audit_records_who_did_what_with_the_result(client, auth_on, world):
    from soteria_site.models import AuditEntry

    post(client, "admin", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    post(client, "viewer", "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"})
    entries = list(AuditEntry.objects.order_by("at").values_list("actor", "action", "target", "result"))
    assert entries == [("alice", "backup.create", "ai/llm-cache", "ok"),
                       ("dave", "backup.create", "ai/llm-cache", "forbidden")]
