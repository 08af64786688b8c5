"""Every endpoint of the OpenAPI schema answers what the schema says.

The schema comes from GET /v1/openapi; each (path, method) in it is called through
Django's test client against the in-process fake cluster, for its success and its main
errors, and every answer's body is validated against the schema of its status. The
components are made strict (no property the serializer does not declare; nullable only
where declared; times as the API writes them), so a serializer and its real answer cannot
drift apart. An endpoint the cases below do not call fails `test_every_operation_is_exercised`.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
import time_machine
from jsonschema import Draft202012Validator, FormatChecker

from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db(transaction=True)  # namespace batches run in threads

METHODS = ("get", "post", "put", "patch", "delete")
# Error bodies may carry extra fields (existing, pvcs, limit, driver, ...): left open.
OPEN_COMPONENTS = {"ErrorResponse"}
API_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")  # soteria_site.core.timeparse.format_time


@dataclass(frozen=True)
class Case:
    method: str
    path: str  # as the schema names it
    url: str
    status: int
    body: object = None
    before: Callable | None = field(default=None, compare=False)
    headers: dict = field(default_factory=dict)
    auth: bool = False  # SOTERIA_AUTH_REQUIRED on, with a scoped identity's rules

    @property
    def id(self) -> str:
        return f"{self.method.upper()} {self.url} {self.status}"


def _post(client, url, body):
    return client.post(url, body, content_type="application/json")


def _backup(client):
    assert _post(client, "/v1/backup", {"namespace": "ai", "pvc": "llm-cache"}).status_code == 200


def _restore(client):
    response = _post(client, "/v1/restores", {"namespace": "ai", "pvc": "llm-cache",
                                              "target_namespace": "ai-restore", "target_pvc": "copy"})
    assert response.status_code == 200


def _policies(client):
    for body in ({"namespace": "ai", "interval_hours": 24}, {"namespace": "ai", "pvc": "llm-cache",
                                                              "interval_hours": 6, "retain": 3, "tags": ["a=b"]},
                 {"namespace": "media", "interval_hours": 12, "enabled": False}):
        assert _post(client, "/v1/policies", body).status_code == 201


def _spoiled_policies(client):
    """The policies, then someone else writes something unreadable over them."""
    from soteria_site.core import kubernetes

    _policies(client)
    secret = kubernetes.find_secret("soteria", "soteria-policies")
    kubernetes.replace_secret("soteria", "soteria-policies", {"metadata": {
        "name": "soteria-policies", "resourceVersion": secret.resource_version},
        "data": {"policies.json": base64.b64encode(b"{broken").decode()}})


def _drill(client):
    assert _post(client, "/v1/restore-drills", {"namespace": "ai", "pvc": "llm-cache"}).status_code == 202


def _drills_ended(client):
    """A drill of ai/llm-cache that passed, with what a worker records, and one running."""
    from backups.services import drill_results, drills

    _drill(client)
    [running] = drill_results.history("ai", "llm-cache")
    drills.finish("ai", "llm-cache", running["id"], result="passed", reason="restored 3 files",
                  restored={"files": 3, "bytes": 30, "digest": "ab", "seconds": 1.5},
                  source={"files": 3, "bytes": 30, "digest": "ab", "changed_files": 0},
                  cleanup={"succeeded": True, "deleted": ["pvc soteria/x"], "errors": []})
    drills._release("ai", "llm-cache", running["id"], running["slot"])
    assert _post(client, "/v1/restore-drills", {"namespace": "media", "pvc": "photos"}).status_code == 202


def _swap(client):
    assert _post(client, "/v1/restores/swap", SWAP).status_code == 200


SCOPED = {"HTTP_X_AUTH_REQUEST_USER": "erin", "HTTP_X_AUTH_REQUEST_GROUPS": "team-ai"}
SOURCE = {"namespace": "ai", "pvc": "llm-cache"}
SWAP = {**SOURCE, "restored_pvc": "llm-cache-restored"}

CASES = [
    # The inventory.
    Case("get", "/v1/inventory", "/v1/inventory", 200),
    Case("get", "/v1/inventory", "/v1/inventory?namespace=ai", 200),
    Case("get", "/v1/inventory", "/v1/inventory?namespace=Not_A_Name", 400),
    Case("get", "/v1/inventory", "/v1/inventory", 403, auth=True, headers={"HTTP_X_AUTH_REQUEST_USER": "mallory",
                                                                            "HTTP_X_AUTH_REQUEST_GROUPS": "guests"}),
    Case("get", "/v1/inventory", "/v1/inventory", 401, auth=True),
    # One PVC's backups.
    Case("get", "/v1/backups", "/v1/backups?namespace=ai&pvc=llm-cache", 200),
    Case("get", "/v1/backups", "/v1/backups?namespace=ai", 400),
    Case("get", "/v1/backups", "/v1/backups?namespace=ai&pvc=nope", 404),
    # Backups.
    Case("post", "/v1/backup", "/v1/backup", 200, {**SOURCE, "tags": ["a=b"]}),
    Case("post", "/v1/backup", "/v1/backup", 200, {**SOURCE, "dry_run": True}),
    Case("post", "/v1/backup", "/v1/backup", 400, {"namespace": "ai"}),
    Case("post", "/v1/backup", "/v1/backup", 400, "{not json"),
    Case("post", "/v1/backup", "/v1/backup", 404, {"namespace": "ai", "pvc": "nope"}),
    Case("post", "/v1/backup", "/v1/backup", 409, SOURCE, before=_backup),
    Case("post", "/v1/backup", "/v1/backup", 422, {"namespace": "ai", "pvc": "local"}),
    Case("post", "/v1/backup", "/v1/backup", 403, {"namespace": "media", "pvc": "photos"}, auth=True,
         headers=SCOPED),
    Case("post", "/v1/backup/namespace", "/v1/backup/namespace", 200, {"namespace": "ai"}),
    Case("post", "/v1/backup/namespace", "/v1/backup/namespace", 200, {"namespace": "ai", "dry_run": True}),
    Case("post", "/v1/backup/namespace", "/v1/backup/namespace", 400, {"namespace": "ai", "tags": "a=b"}),
    Case("post", "/v1/backup/namespace", "/v1/backup/namespace", 404, {"namespace": "nowhere"}),
    # Restores.
    Case("get", "/v1/restores", "/v1/restores", 200, before=_restore),
    Case("get", "/v1/restores", "/v1/restores?namespace=ai-restore", 200, before=_restore),
    Case("get", "/v1/restores", "/v1/restores?namespace=-bad", 400),
    Case("post", "/v1/restores", "/v1/restores", 200, {**SOURCE, "target_pvc": "copy"}),
    Case("post", "/v1/restores", "/v1/restores", 200, {**SOURCE, "target_namespace": "ai-restore",
                                                        "target_pvc": "copy", "dry_run": True}),
    Case("post", "/v1/restores", "/v1/restores", 400, SOURCE),
    Case("post", "/v1/restores", "/v1/restores", 404, {**SOURCE, "target_namespace": "nowhere", "target_pvc": "x"}),
    Case("post", "/v1/restores", "/v1/restores", 409, {**SOURCE, "target_pvc": "local"}),
    Case("post", "/v1/restores", "/v1/restores", 422, {"namespace": "ai", "pvc": "local", "target_pvc": "x"}),
    Case("post", "/v1/restore-test", "/v1/restore-test", 200, {**SOURCE, "target_pvc": "copy"}),
    Case("post", "/v1/restore-test", "/v1/restore-test", 409, {**SOURCE, "target_pvc": "local"}),
    Case("post", "/v1/restores/namespace", "/v1/restores/namespace", 200,
         {"namespace": "ai", "target_namespace": "ai-restore"}),
    Case("post", "/v1/restores/namespace", "/v1/restores/namespace", 200,
         {"namespace": "ai", "target_namespace": "ai-restore", "dry_run": True}),
    Case("post", "/v1/restores/namespace", "/v1/restores/namespace", 400, {"namespace": "ai"}),
    Case("post", "/v1/restores/namespace", "/v1/restores/namespace", 404,
         {"namespace": "ai", "target_namespace": "nowhere"}),
    # Swapping a restored claim into place, and undoing it.
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 200, {**SWAP, "dry_run": True}),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 200,
         {**SWAP, "workload": {"kind": "Deployment", "name": "llm"}}),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 400, {**SWAP, "workload": {"kind": "Pod", "name": "x"}}),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 404, {**SOURCE, "restored_pvc": "nope"}),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 409, {**SOURCE, "restored_pvc": "pending"}),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 409, SWAP, before=_swap),
    Case("post", "/v1/restores/swap", "/v1/restores/swap", 403, {"namespace": "media", "pvc": "photos",
                                                                  "restored_pvc": "x", "dry_run": True},
         auth=True, headers=SCOPED),
    Case("post", "/v1/restores/swap/undo", "/v1/restores/swap/undo", 200, {**SOURCE, "dry_run": True},
         before=_swap),
    Case("post", "/v1/restores/swap/undo", "/v1/restores/swap/undo", 200, SOURCE, before=_swap),
    Case("post", "/v1/restores/swap/undo", "/v1/restores/swap/undo", 400, {"namespace": "ai"}),
    Case("post", "/v1/restores/swap/undo", "/v1/restores/swap/undo", 404, SOURCE),
    # Policies.
    Case("get", "/v1/policies", "/v1/policies", 200, before=_policies),
    Case("post", "/v1/policies", "/v1/policies", 201, {"namespace": "ai", "pvc": "llm-cache", "interval_hours": 6}),
    Case("post", "/v1/policies", "/v1/policies", 200, {"namespace": "ai", "interval_hours": 2, "retain": 4},
         before=_policies),
    Case("post", "/v1/policies", "/v1/policies", 400, {"namespace": "ai", "interval_hours": 0}),
    Case("delete", "/v1/policies/{id}", "/v1/policies/ai.llm-cache", 200, before=_policies),
    Case("delete", "/v1/policies/{id}", "/v1/policies/ai.nope", 404, before=_policies),
    Case("delete", "/v1/policies/", "/v1/policies/?namespace=ai", 200, before=_policies),
    Case("delete", "/v1/policies/", "/v1/policies/?namespace=ai&pvc=llm-cache", 200, before=_policies),
    Case("delete", "/v1/policies/", "/v1/policies/?pvc=llm-cache", 400),
    Case("delete", "/v1/policies/", "/v1/policies/?namespace=media&pvc=nope", 404, before=_policies),
    Case("post", "/v1/policy-store/recover", "/v1/policy-store/recover", 200, {}, before=_spoiled_policies),
    Case("post", "/v1/policy-store/recover", "/v1/policy-store/recover", 400, {"discard": "yes"}),
    Case("post", "/v1/policy-store/recover", "/v1/policy-store/recover", 409, {}, before=_policies),
    # Restore drills.
    Case("get", "/v1/restore-drills", "/v1/restore-drills", 200, before=_drills_ended),
    Case("get", "/v1/restore-drills", "/v1/restore-drills?namespace=ai&pvc=llm-cache", 200, before=_drills_ended),
    Case("get", "/v1/restore-drills", "/v1/restore-drills?pvc=llm-cache", 400),
    Case("get", "/v1/restore-drills", "/v1/restore-drills?namespace=-bad", 400),
    Case("get", "/v1/restore-drills", "/v1/restore-drills?namespace=media", 403, auth=True, headers=SCOPED),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 202, SOURCE),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 200, {**SOURCE, "dry_run": True}),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 400, {**SOURCE, "force": True}),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 404, {"namespace": "ai", "pvc": "nope"}),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 409, SOURCE, before=_drill),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 409, {"namespace": "ai", "pvc": "pending"}),
    Case("post", "/v1/restore-drills", "/v1/restore-drills", 403, {"namespace": "media", "pvc": "photos"},
         auth=True, headers=SCOPED),
    # Who am I.
    Case("get", "/v1/whoami", "/v1/whoami", 200),
    Case("get", "/v1/whoami", "/v1/whoami", 200, auth=True, headers=SCOPED),
]


def _nullable(schema):
    """OpenAPI 3.0 to JSON Schema: `nullable: true` as a null alternative, and objects of
    declared properties closed (except OPEN_COMPONENTS)."""
    if isinstance(schema, list):
        return [_nullable(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _nullable(v) for k, v in schema.items()}
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        out = {"anyOf": [out, {"type": "null"}]}
    return out


def _json_schema(components: dict) -> dict:
    return {name: _nullable(s) if name not in OPEN_COMPONENTS else s for name, s in components.items()}


_formats = FormatChecker()


@_formats.checks("date-time")
def _api_time(value) -> bool:
    return not isinstance(value, str) or bool(API_TIME.match(value))


@pytest.fixture
def world(cluster, settings, monkeypatch, policy_secret_settings):  # noqa: F811 - the fixture imported above
    from backups.services import drills
    from tests.support.fake_workloads import DEPLOYMENT, FakeApps, deployment

    # A restore drill is queued for the worker, not run; its manifests are not collected here.
    monkeypatch.setattr(drills, "_enqueue", lambda plan: None)
    monkeypatch.setattr(drills, "_collect_manifests", lambda namespace, pvc: None)
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None), ("Error", 1, None),
                                                ("Completed", 30, None, {"tier": "gold"})])
    cluster.add_pvc("ai", "local", storage_class="local-path", csi_driver=None)
    cluster.add_pvc("ai", "pending", bound=False)
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    cluster.namespaces.update({"ai-restore", "media-restore"})
    # A Deployment mounting ai/llm-cache and a restored copy to swap in under it.
    cluster.add_pvc("ai", "llm-cache-restored")
    FakeApps(cluster).install(monkeypatch).add(DEPLOYMENT, deployment("ai", "llm", "llm-cache", replicas=1))
    return cluster


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get("/v1/openapi?format=json")
    assert response.status_code == 200, response.content
    return response.json()


def _auth_on(settings):
    settings.SOTERIA_AUTH_REQUIRED = True
    settings.SOTERIA_ALLOWED_GROUPS = ["admin"]
    settings.SOTERIA_READONLY_GROUPS = ["viewers"]
    settings.SOTERIA_BACKUP_SCOPES = {"team-ai": frozenset({"ai"})}
    settings.SOTERIA_RESTORE_SCOPES = {"team-ai": frozenset({"ai"})}
    # The test client's requests come from 127.0.0.1: it plays the trusted proxy here.
    settings.SOTERIA_TRUSTED_PROXIES = [ipaddress.ip_network("127.0.0.1/32")]


def _operations(schema) -> set[tuple[str, str]]:
    return {(path, method) for path, item in schema["paths"].items() for method in item if method in METHODS}


def _matches(template: str, url: str) -> bool:
    pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template))
    return re.fullmatch(pattern, url.partition("?")[0]) is not None


def test_every_operation_is_exercised(schema):
    assert {(c.path, c.method) for c in CASES} == _operations(schema)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_the_answer_matches_the_schema(client, world, settings, schema, case):
    assert _matches(case.path, case.url), f"{case.url} is not {case.path}"
    with time_machine.travel(NOW, tick=False):
        if case.before:
            case.before(client)
        if case.auth:
            _auth_on(settings)
        if case.method == "get":
            response = client.get(case.url, **case.headers)
        else:
            response = getattr(client, case.method)(case.url, case.body, content_type="application/json",
                                                    **case.headers)
    assert response.status_code == case.status, response.content
    _assert_valid(schema, case.path, case.method, case.status, response.json())


def test_a_backups_run_summary_matches_the_schema(client, world, schema, monkeypatch):
    """The restic driver's `summary` of a snapshot (null above, where Longhorn answers)."""
    from dataclasses import replace

    from backups.drivers.longhorn import LonghornDriver
    from backups.types import BackupSummary

    listed = LonghornDriver.list_backups
    summary = BackupSummary(snapshot_id="bd6f7d6d", files_new=3, files_changed=1, files_unmodified=5,
                            bytes_added=1050, files_processed=9, bytes_processed=4096)

    def with_summary(self, claim):
        volume, records = listed(self, claim)
        return volume, [replace(r, summary=summary) if r.completed else r for r in records]
    monkeypatch.setattr(LonghornDriver, "list_backups", with_summary)
    with time_machine.travel(NOW, tick=False):
        response = client.get("/v1/backups?namespace=ai&pvc=llm-cache")
    assert response.status_code == 200, response.content
    body = response.json()
    assert {"files_new": 3, "files_changed": 1, "files_unmodified": 5, "bytes_added": 1050, "files_processed": 9,
            "bytes_processed": 4096} in [b["summary"] for b in body["backups"]]
    assert None in [b["summary"] for b in body["backups"]]  # the failed backup's
    _assert_valid(schema, "/v1/backups", "get", 200, body)


def _assert_valid(schema, path: str, method: str, status: int, body) -> None:
    declared = schema["paths"][path][method]["responses"]
    assert str(status) in declared, f"{status} is not in the schema of {method.upper()} {path}"
    body_schema = declared[str(status)]["content"]["application/json"]["schema"]
    validator = Draft202012Validator({**_nullable(body_schema),
                                      "components": {"schemas": _json_schema(schema["components"]["schemas"])}},
                                     format_checker=_formats)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)
