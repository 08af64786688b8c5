"""The Kubernetes client at its seam: JSON to dataclasses, API failures to Soteria's errors."""

import pytest
from werkzeug.wrappers import Response

from soteria_site.core import kubernetes
from soteria_site.core.errors import Conflict, NotFound, UpstreamError, UpstreamUnavailable
from tests.support.fakes import json_response

PVC = {
    "metadata": {"name": "llm-cache", "namespace": "ai", "uid": "u-1", "creationTimestamp": "2024-05-01T10:00:00Z"},
    "spec": {"storageClassName": "longhorn", "volumeName": "pvc-1", "accessModes": ["ReadWriteOnce"],
             "resources": {"requests": {"storage": "50Gi"}}},
    "status": {"phase": "Bound", "capacity": {"storage": "50Gi"}},
}
PV = {
    "metadata": {"name": "pvc-1"},
    "spec": {"csi": {"driver": "driver.longhorn.io", "volumeHandle": "vol-1", "fsType": "ext4"},
             "claimRef": {"namespace": "ai", "name": "llm-cache"}, "storageClassName": "longhorn",
             "capacity": {"storage": "50Gi"}, "accessModes": ["ReadWriteOnce"],
             "persistentVolumeReclaimPolicy": "Retain"},
    "status": {"phase": "Bound"},
}


def _status(code, reason, message):
    return json_response({"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": message,
                          "reason": reason, "code": code}, status=code)


@pytest.fixture
def fake(kube_api):
    return kube_api


def test_pvcs_become_dataclasses(fake):
    fake.route("GET", "/api/v1/persistentvolumeclaims", {"kind": "PersistentVolumeClaimList", "items": [PVC]})
    [pvc] = kubernetes.list_pvcs()
    assert (pvc.namespace, pvc.name, pvc.phase, pvc.volume_name) == ("ai", "llm-cache", "Bound", "pvc-1")
    assert pvc.requested == "50Gi" and pvc.access_modes == ("ReadWriteOnce",)


def test_pv_knows_its_csi_volume_and_claim(fake):
    fake.route("GET", "/api/v1/persistentvolumes/pvc-1", PV)
    pv = kubernetes.get_pv("pvc-1")
    assert (pv.csi_driver, pv.volume_handle) == ("driver.longhorn.io", "vol-1") and pv.claim_name == "llm-cache"


def test_sends_the_kubeconfig_token(fake):
    seen = {}

    def handler(request):
        seen["auth"] = request.headers.get("Authorization")
        return json_response({"kind": "PersistentVolumeList", "items": []})

    fake.route("GET", "/api/v1/persistentvolumes", handler)
    kubernetes.list_pvs()
    assert seen["auth"] == "Bearer t0k3n"


def test_404_is_not_found_with_the_servers_message(fake):
    fake.route("GET", "/api/v1/namespaces/ai/persistentvolumeclaims/nope",
               lambda r: _status(404, "NotFound", 'persistentvolumeclaims "nope" not found'))
    with pytest.raises(NotFound, match='persistentvolumeclaims "nope" not found'):
        kubernetes.get_pvc("ai", "nope")
    assert kubernetes.find_pvc("ai", "nope") is None


def test_409_already_exists_is_a_conflict(fake):
    fake.route("POST", "/api/v1/namespaces/ai/secrets",
               lambda r: _status(409, "AlreadyExists", 'secrets "s" already exists'))
    with pytest.raises(Conflict) as info:
        kubernetes.create_secret("ai", {"metadata": {"name": "s"}})
    assert info.value.code == "already_exists" and info.value.status == 409


def test_forbidden_is_a_bad_gateway_naming_the_refusal(fake):
    fake.route("GET", "/api/v1/persistentvolumes",
               lambda r: _status(403, "Forbidden", 'persistentvolumes is forbidden: User "soteria" cannot list'))
    with pytest.raises(UpstreamError) as info:
        kubernetes.list_pvs()
    assert info.value.status == 502 and "forbidden" in info.value.detail


def test_unreachable_apiserver_is_503(fake, settings, tmp_path):
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(kubeconfig.read_text().replace(fake.url, "http://127.0.0.1:9"))
    kubernetes.reset()
    with pytest.raises(UpstreamUnavailable) as info:
        kubernetes.list_pvcs()
    assert info.value.status == 503 and info.value.code == "kubernetes_unavailable"


def test_missing_kubeconfig_is_reported_as_unavailable(settings, tmp_path):
    settings.KUBECONFIG = str(tmp_path / "missing")
    kubernetes.reset()
    with pytest.raises(UpstreamUnavailable, match="no usable Kubernetes configuration"):
        kubernetes.list_pvcs()


def test_a_server_error_is_a_bad_gateway(fake):
    fake.route("GET", "/api/v1/persistentvolumeclaims", lambda r: Response("oops", status=500))
    with pytest.raises(UpstreamError) as info:
        kubernetes.list_pvcs()
    assert info.value.status == 502 and info.value.upstream_status == 500


def test_pvcs_are_listed_page_by_page_as_one_call(fake, monkeypatch):
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 2)
    claims = [{**PVC, "metadata": {**PVC["metadata"], "name": f"claim-{i}"}} for i in range(5)]
    seen = []

    def pages(request):
        start = int(request.args.get("continue") or 0)
        seen.append((request.args["limit"], request.args.get("continue")))
        meta = {"continue": str(start + 2)} if start + 2 < len(claims) else {}
        return json_response({"kind": "PersistentVolumeClaimList", "metadata": meta, "items": claims[start:start + 2]})

    fake.route("GET", "/api/v1/persistentvolumeclaims", pages)
    ok = kubernetes.UPSTREAM_REQUESTS.labels("kubernetes", "pvcs.list", "ok")
    before = ok._value.get()
    assert [pvc.name for pvc in kubernetes.list_pvcs()] == [f"claim-{i}" for i in range(5)]
    assert seen == [("2", None), ("2", "2"), ("2", "4")]
    assert ok._value.get() - before == 1


def test_a_list_cut_short_is_a_bad_gateway_not_a_shorter_list(fake):
    fake.route("GET", "/api/v1/persistentvolumes", lambda r: Response(
        '{"kind":"PersistentVolumeList","metadata":{},"items":[{"metadata":{"name":"pv-1"}},{"metad',
        content_type="application/json"))
    with pytest.raises(UpstreamError, match="not JSON") as info:
        kubernetes.list_pvs()
    assert info.value.status == 502


EXPIRED = ("The provided continue parameter is too old to display a consistent list result. You can start a "
           "new list without the continue parameter, or use the continue token in this response to retrieve "
           "the remainder of the results.")


def _paged(claims, expire_at=None, offer=True, times=1):
    """PVC pages of 2; the page starting at `expire_at` answers 410 Expired (`times` times), as
    the apiserver does once etcd has compacted the revision of the list's first page, offering
    a token that reads the rest (`offer`)."""
    seen, left = [], {"expired": times}

    def pages(request):
        token = request.args.get("continue")
        seen.append(token)
        start = int((token or "0").removeprefix("resume-"))
        if start == expire_at and token and not token.startswith("resume-") and left["expired"]:
            left["expired"] -= 1
            body = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "message": EXPIRED,
                    "reason": "Expired", "code": 410, "metadata": {"continue": f"resume-{start}"} if offer else {}}
            return json_response(body, status=410)
        meta = {"continue": str(start + 2)} if start + 2 < len(claims) else {}
        return json_response({"kind": "PersistentVolumeClaimList", "metadata": meta, "items": claims[start:start + 2]})

    return pages, seen


@pytest.mark.parametrize("lister", ["stream_items", "list_pages"])
def test_a_list_whose_snapshot_expired_reads_the_rest_with_the_token_offered(fake, monkeypatch, caplog, lister):
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 2)
    claims = [{**PVC, "metadata": {**PVC["metadata"], "name": f"claim-{i}"}} for i in range(5)]
    pages, seen = _paged(claims, expire_at=2)
    fake.route("GET", "/api/v1/persistentvolumeclaims", pages)
    ok = kubernetes.UPSTREAM_REQUESTS.labels("kubernetes", "pvcs.list", "ok")
    before = ok._value.get()
    if lister == "stream_items":
        names = [pvc.name for pvc in kubernetes.list_pvcs()]
    else:
        api = kubernetes._core().list_persistent_volume_claim_for_all_namespaces
        names = [item["metadata"]["name"] for page in kubernetes.list_pages("pvcs.list", api) for item in page]
    assert names == [f"claim-{i}" for i in range(5)]  # every claim once: none lost, none twice
    assert seen == [None, "2", "resume-2", "4"]
    assert ok._value.get() - before == 1
    assert "reading the rest of the list as it is now" in caplog.text


def test_an_expired_list_with_no_token_offered_fails_instead_of_starting_again(fake, monkeypatch):
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 2)
    claims = [{**PVC, "metadata": {**PVC["metadata"], "name": f"claim-{i}"}} for i in range(5)]
    pages, seen = _paged(claims, expire_at=2, offer=False)
    fake.route("GET", "/api/v1/persistentvolumeclaims", pages)
    with pytest.raises(UpstreamError, match="could not continue pvcs.list: The provided continue parameter") as info:
        kubernetes.list_pvcs()
    assert info.value.status == 502 and info.value.upstream_status == 410
    assert seen == [None, "2"]  # the first page was not read again


def test_a_list_that_keeps_expiring_gives_up(fake, monkeypatch):
    monkeypatch.setattr(kubernetes, "PAGE_SIZE", 2)
    claims = [{**PVC, "metadata": {**PVC["metadata"], "name": f"claim-{i}"}} for i in range(5)]

    def pages(request):
        token = request.args.get("continue")
        if not token:
            return json_response({"kind": "PersistentVolumeClaimList", "metadata": {"continue": "a"},
                                  "items": claims[:2]})
        return json_response({"kind": "Status", "status": "Failure", "message": EXPIRED, "reason": "Expired",
                              "code": 410, "metadata": {"continue": token + "a"}}, status=410)

    fake.route("GET", "/api/v1/persistentvolumeclaims", pages)
    with pytest.raises(UpstreamError) as info:
        kubernetes.list_pvcs()
    assert info.value.upstream_status == 410
