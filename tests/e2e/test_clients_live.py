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


def _etcd(live, path, body):
    import json
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{live.port('etcd')}{path}", data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_kubernetes_list_that_outlives_etcd_compaction_reads_the_rest(live, monkeypatch, caplog):
    """A list slower than the apiserver's compaction interval: its continue token points at a
    revision etcd has compacted away, the real apiserver answers 410 with a token for the rest,
    and the list goes on with it (every object once) instead of failing."""
    import base64

    label = "soteria.io/e2e=compaction"
    for i in range(3):
        kubernetes.create_config_map("default", {"metadata": {"name": f"e2e-compaction-{i}",
                                                              "labels": {"soteria.io/e2e": "compaction"}}})
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 1)
    pages = kubernetes.list_pages("configmaps.list", kubernetes._core().list_namespaced_config_map, "default",
                                  label_selector=label)
    first = next(pages)
    kubernetes.create_config_map("default", {"metadata": {"name": "e2e-compaction-later"}})  # a newer revision
    revision = _etcd(live, "/v3/kv/range", {"key": base64.b64encode(b"/").decode()})["header"]["revision"]
    _etcd(live, "/v3/kv/compaction", {"revision": revision, "physical": True})
    rest = [item for page in pages for item in page]
    names = [item["metadata"]["name"] for item in first + rest]
    assert sorted(names) == [f"e2e-compaction-{i}" for i in range(3)]
    assert "could not continue configmaps.list" in caplog.text  # the 410 did happen
