"""The two client modules against the real apiserver and the Longhorn emulator."""

import pytest

from backups.clients import longhorn
from sandbox import cluster, faults
from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, NotFound, UpstreamError, UpstreamUnavailable
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db


def test_kubernetes_404_is_not_found(live):
    with pytest.raises(NotFound, match='persistentvolumeclaims "nope" not found'):
        kubernetes.get_pvc("ai", "nope")
    assert kubernetes.find_pvc("ai", "llm-cache").phase == "Bound"


def test_kubernetes_409_is_a_conflict(live):
    body = {"metadata": {"name": "e2e-client-conflict"}, "stringData": {"k": "v"}}
    kubernetes.create_secret("default", body)
    with pytest.raises(Conflict) as info:
        kubernetes.create_secret("default", body)
    assert info.value.code == "already_exists"


def test_kubernetes_stale_resource_version_is_a_conflict(live):
    secret = kubernetes.create_secret("default", {"metadata": {"name": "e2e-client-cas"}, "stringData": {"k": "1"}})
    body = {"metadata": {"name": "e2e-client-cas", "resourceVersion": secret.resource_version}, "stringData": {"k": "2"}}
    kubernetes.replace_secret("default", "e2e-client-cas", body)
    with pytest.raises(Conflict):
        kubernetes.replace_secret("default", "e2e-client-cas", body)


def test_kubernetes_unreachable_is_unavailable(live, settings, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(live.kubeconfig.read_text().replace(f":{live.port('apiserver')}", ":9"))
    settings.KUBECONFIG = str(kubeconfig)
    kubernetes.reset()
    with pytest.raises(UpstreamUnavailable):
        kubernetes.list_pvcs()


def test_longhorn_lists_volumes_and_misses_are_none(live):
    names = {v.name for v in longhorn.list_volumes()}
    assert len(names) >= 6
    assert longhorn.get_volume("no-such-volume") is None


def test_longhorn_500_error_body_is_surfaced_with_its_message(live):
    faults.inject(live, "volumes.list", message="disk pressure on node sandbox-node", count=5)
    with pytest.raises(UpstreamError) as info:
        longhorn.list_volumes()
    assert info.value.status == 502 and "disk pressure on node sandbox-node" in info.value.detail


def test_longhorn_unreachable_is_unavailable(live, settings):
    settings.SOTERIA_LONGHORN_URL = f"http://127.0.0.1:{live.port('longhorn') + 100}"
    with pytest.raises(UpstreamUnavailable, match="connection refused"):
        longhorn.list_volumes()


def test_readyz_follows_longhorn_going_down_and_coming_back(client, live):
    assert client.get("/readyz").status_code == 200
    cluster.stop_service(live, "longhorn")
    try:
        response = client.get("/readyz")
        assert response.status_code == 503 and response.json()["failed"] == ["longhorn"]
    finally:
        cluster.start_service(live, "longhorn")
    wait_for(lambda: client.get("/readyz").status_code == 200, what="readyz back to 200")
