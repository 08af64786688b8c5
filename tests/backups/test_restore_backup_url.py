"""POST /v1/restores with `backup_url`: only backups of the source PVC's own volume, at the client seam."""

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _url(volume: str, index: int = 0) -> str:
    """The URL the fake cluster gives a volume's index-th backup."""
    return f"s3://b@r/?backup=backup-{volume}-{index}&volume={volume}"


def _restore(client, backup_url, **body):
    body = {"namespace": "ai", "pvc": "llm-cache", "target_pvc": "restored", "backup_url": backup_url, **body}
    return client.post("/v1/restores", body, content_type="application/json")


@pytest.fixture
def world(cluster):
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 30, None), ("InProgress", 1, None)])
    cluster.add_pvc("ai", "notebooks", backups=[("Completed", 3, None)])
    cluster.add_pvc("media", "photos", backups=[("Completed", 2, None)])
    return cluster


@pytest.mark.parametrize("url", [_url("pvc-media-photos"), _url("pvc-ai-notebooks")],
                         ids=["other-namespace", "same-namespace-other-pvc"])
def test_a_backup_of_another_volume_is_refused_before_it_is_looked_up(client, world, url):
    response = _restore(client, url)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["error"] == "invalid_input" and body["field"] == "backup_url"
    assert "belongs to another volume" in body["detail"] and "pvc-ai-llm-cache" in body["detail"]
    # Only the source PVC and its PV were read: no backup listing, no target check, nothing created.
    assert dict(world.calls) == {"find_pvc": 1, "get_pv": 1}
    assert not [v for v in world.volumes.values() if v.from_backup]


def test_a_dry_run_is_refused_the_same_way(client, world):
    response = _restore(client, _url("pvc-media-photos"), dry_run=True)
    assert response.status_code == 400 and response.json()["field"] == "backup_url"


def test_the_answer_does_not_say_whether_the_other_backup_exists(client, world):
    existing = _restore(client, _url("pvc-media-photos", 0))
    invented = _restore(client, _url("pvc-media-photos", 7))
    assert existing.status_code == invented.status_code == 400
    assert existing.json() == invented.json()


def test_a_backup_of_the_pvcs_own_volume_is_restored(client, world):
    response = _restore(client, _url("pvc-ai-llm-cache", 0), target_namespace="ai")
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["backup"] == "backup-pvc-ai-llm-cache-0" and body["source_volume"] == "pvc-ai-llm-cache"
    assert world.created_volume_args["from_backup"] == _url("pvc-ai-llm-cache", 0)


def test_an_unfinished_backup_of_the_own_volume_is_409(client, world):
    response = _restore(client, _url("pvc-ai-llm-cache", 1))
    assert response.status_code == 409
    assert response.json()["error"] == "backup_not_completed" and response.json()["field"] == "backup_url"


def test_an_unknown_url_of_the_own_volume_is_404(client, world):
    response = _restore(client, _url("pvc-ai-llm-cache", 9))
    assert response.status_code == 404 and response.json()["field"] == "backup_url"


def test_a_url_naming_the_own_volume_but_another_backup_is_not_found(client, world):
    """The URL Longhorn restores from is always one of the own volume's records, never the caller's text."""
    forged = "s3://b@r/?backup=backup-pvc-media-photos-0&volume=pvc-ai-llm-cache"
    response = _restore(client, forged)
    assert response.status_code == 404 and response.json()["field"] == "backup_url"
    assert not [v for v in world.volumes.values() if v.from_backup]
