"""Finding 7: the Activity page shows a scoped identity only the actions of its namespaces."""


from tests.support import cast
from tests.support.cast import PROXY
from tests.support.http import call


def test_activity_shows_a_scoped_identity_only_its_namespaces(secure_server):
    for body in ({"namespace": "media", "pvc": "photos", "dry_run": True},
                 {"namespace": "ai", "pvc": "model-store", "dry_run": True}):
        assert call(secure_server.url, "POST", "/v1/backup", headers=cast.ADMIN, peer=PROXY, json=body).status == 200
    restore = {"namespace": "media", "pvc": "photos", "target_namespace": "ai", "target_pvc": "from-media",
               "dry_run": True}
    assert call(secure_server.url, "POST", "/v1/restores", headers=cast.ADMIN, peer=PROXY, json=restore).status == 200
    json_admin = [*cast.ADMIN, ("Content-Type", "application/json")]  # header identities need CSRF or JSON
    assert call(secure_server.url, "DELETE", "/v1/policies/media", headers=json_admin, peer=PROXY).status == 404

    scoped = call(secure_server.url, "GET", "/activity/", headers=cast.SCOPED, peer=PROXY)
    assert scoped.status == 200
    assert "ai/model-store" in scoped.text
    assert "media" not in scoped.text.split("<table", 1)[-1]  # not even the restore from media into ai
    admin = call(secure_server.url, "GET", "/activity/", headers=cast.ADMIN, peer=PROXY).text
    assert "media/photos" in admin and "ai/model-store" in admin and "media/photos -&gt; ai/from-media" in admin
