"""A restore uses only backups of its source PVC's own volume, whatever URL the caller passes.

Backup URLs are visible to every reader (GET /v1/backups); a user allowed to restore in
namespace ai must not use one to restore media's data into ai. Real gunicorn, auth
required, on the sandbox.
"""

import pytest

from sandbox import faults
from tests.support import cast
from tests.support.cast import PROXY
from tests.support.http import call


def _backup_urls(server, namespace, pvc) -> list[str]:
    """Completed backup URLs of a PVC, as a reader sees them."""
    reply = call(server.url, "GET", f"/v1/backups?namespace={namespace}&pvc={pvc}", headers=cast.VIEWER, peer=PROXY)
    assert reply.status == 200, reply.text
    return [b["url"] for b in reply.json()["backups"] if b["state"] == "Completed"]


def _restore(server, who, **body):
    body = {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "restore-from-url", **body}
    return call(server.url, "POST", "/v1/restores", headers=who, json=body, peer=PROXY)


def _ai_pvcs(server) -> set[str]:
    reply = call(server.url, "GET", "/v1/inventory?namespace=ai", headers=cast.ADMIN, peer=PROXY)
    return {p["pvc"] for ns in reply.json()["namespaces"] for p in ns["pvcs"]}


@pytest.mark.parametrize("dry_run", [True, False], ids=["dry-run", "restore"])
def test_scoped_restorer_cannot_restore_another_namespaces_backup_into_its_own(secure_server, sandbox, dry_run):
    media_url = _backup_urls(secure_server, "media", "photos")[0]
    faults.reset_calls(sandbox)
    reply = _restore(secure_server, cast.SCOPED, backup_url=media_url, target_pvc="stolen-photos", dry_run=dry_run)
    assert reply.status == 400, reply.text
    body = reply.json()
    assert body["error"] == "invalid_input" and body["field"] == "backup_url"
    assert "belongs to another volume" in body["detail"]
    assert faults.calls(sandbox) == {}, "Longhorn was asked about the other volume"
    assert "stolen-photos" not in _ai_pvcs(secure_server)


def test_a_backup_of_another_pvc_in_the_same_namespace_is_refused_too(secure_server):
    other_url = _backup_urls(secure_server, "ai", "model-store")[0]
    reply = _restore(secure_server, cast.SCOPED, backup_url=other_url, dry_run=True)
    assert reply.status == 400 and reply.json()["field"] == "backup_url"


def test_the_refusal_does_not_tell_whether_the_other_backup_exists(secure_server):
    media_url = _backup_urls(secure_server, "media", "photos")[0]
    invented = media_url.replace("backup=", "backup=nonexistent-")
    real, fake = (_restore(secure_server, cast.SCOPED, backup_url=url, dry_run=True) for url in (media_url, invented))
    assert real.status == fake.status == 400
    assert real.json() == fake.json()


def test_admins_are_held_to_the_same_rule(secure_server):
    media_url = _backup_urls(secure_server, "media", "photos")[0]
    reply = _restore(secure_server, cast.ADMIN, backup_url=media_url, dry_run=True)
    assert reply.status == 400 and reply.json()["field"] == "backup_url"


def test_a_backup_of_the_pvcs_own_volume_is_still_restorable_by_url(secure_server):
    own_url = _backup_urls(secure_server, "ai", "llm-cache")[-1]
    reply = _restore(secure_server, cast.SCOPED, backup_url=own_url, dry_run=True)
    assert reply.status == 200, reply.text
    body = reply.json()
    assert body["backup_url"] == own_url and body["target_namespace"] == "ai"
    assert own_url.endswith(f"volume={body['source_volume']}")
