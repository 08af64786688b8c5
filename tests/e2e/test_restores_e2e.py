"""Issue 5 end to end: restores into new PVCs, byte for byte, with conflicts and cleanup."""

import threading

import pytest
from django.test import Client

from sandbox import faults, seed
from soteria_site.core import kubernetes
from soteria_site.core.errors import UpstreamError
from tests.support.files import same_tree
from tests.support.http import post
from tests.support.kube import kube
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
FILES = {"README.txt": "restore me\n", "data/rows.csv": "id,v\n" + "".join(f"{i},{i * i}\n" for i in range(500)),
         "deep/a/b/c.txt": "nested\n"}


def _backed_up(client, cfg, namespace, pvc, files=FILES) -> dict:
    """A PVC with files and one real (Completed) backup of them; returns the backup record."""
    seed.make_pvc(cfg, namespace, pvc, files=files)
    assert post(client, "/v1/backup", {"namespace": namespace, "pvc": pvc}).status_code == 200

    def completed():
        body = client.get(f"/v1/backups?namespace={namespace}&pvc={pvc}").json()
        return [b for b in body["backups"] if b["state"] == "Completed"]
    return wait_for(completed, what="backup completed")[0]


def _restored(client, namespace, pvc):
    def done():
        rows = client.get(f"/v1/restores?namespace={namespace}").json()["restores"]
        return next((r for r in rows if r["pvc"] == pvc and r["state"] == "done"), None)
    return wait_for(done, what=f"restore of {namespace}/{pvc}")


def _volume_names(cfg) -> set[str]:
    from backups.clients import longhorn
    return {v.name for v in longhorn.list_volumes()}


@pytest.mark.parametrize("target_namespace", ["e2e-rs", "e2e-rs-other"])
def test_restore_brings_back_the_files_byte_for_byte(client, live, target_namespace):
    source_pvc = f"src-{target_namespace}"
    backup = _backed_up(client, live, "e2e-rs", source_pvc)
    seed.ensure_basics(live, [target_namespace])
    response = post(client, "/v1/restores", {"namespace": "e2e-rs", "pvc": source_pvc, "snapshot": "latest",
                                             "target_namespace": target_namespace, "target_pvc": "restored"})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["backup"] == backup["name"] and body["target_namespace"] == target_namespace
    row = _restored(client, target_namespace, "restored")
    assert row["volume"] == body["volume"]
    source_dir = live.longhorn_volumes_dir / seed.volume_name("e2e-rs", source_pvc)
    assert same_tree(source_dir, live.longhorn_volumes_dir / body["volume"])
    pvc = kube(live).read_namespaced_persistent_volume_claim("restored", target_namespace)
    assert pvc.spec.storage_class_name == "longhorn" and pvc.spec.access_modes == ["ReadWriteOnce"]
    assert pvc.spec.resources.requests["storage"] == "1Gi"
    assert pvc.metadata.labels["soteria.io/restored-from"] == f"e2e-rs.{source_pvc}"
    assert pvc.metadata.labels["soteria.io/backup"] == backup["name"]
    wait_for(lambda: kube(live).read_namespaced_persistent_volume_claim("restored", target_namespace).status.phase
             == "Bound", what="restored claim bound")
    reasons = {(e.involved_object.name, e.reason) for ns in {"e2e-rs", target_namespace}
               for e in kube(live).list_namespaced_event(ns).items}
    assert (source_pvc, "RestoreStarted") in reasons and ("restored", "RestoredFromBackup") in reasons


def test_files_are_those_at_backup_time_not_later(client, live):
    _backed_up(client, live, "e2e-rs", "changing", files={"v.txt": "version 1\n"})
    (live.longhorn_volumes_dir / seed.volume_name("e2e-rs", "changing") / "v.txt").write_text("version 2\n")
    body = post(client, "/v1/restores", {"namespace": "e2e-rs", "pvc": "changing", "target_pvc": "changing-v1"}).json()
    _restored(client, "e2e-rs", "changing-v1")
    assert (live.longhorn_volumes_dir / body["volume"] / "v.txt").read_text() == "version 1\n"


def test_existing_target_is_refused_and_nothing_is_created(client, live):
    _backed_up(client, live, "e2e-rs", "keep")
    before = _volume_names(live)
    response = post(client, "/v1/restores", {"namespace": "e2e-rs", "pvc": "keep", "target_pvc": "keep"})
    assert response.status_code == 409 and response.json()["existing"] == "e2e-rs/keep"
    assert _volume_names(live) == before


def test_missing_target_namespace_is_404(client, live):
    _backed_up(client, live, "e2e-rs", "nons")
    response = post(client, "/v1/restores", {"namespace": "e2e-rs", "pvc": "nons", "target_namespace": "e2e-nowhere",
                                             "target_pvc": "x"})
    assert response.status_code == 404 and "e2e-nowhere" in response.json()["detail"]


def test_latest_never_picks_an_unfinished_backup_or_another_pvcs(client, live):
    first = _backed_up(client, live, "e2e-rs", "latest")
    _backed_up(client, live, "e2e-rs", "neighbour")  # newer, but another PVC's
    faults.set_op_seconds(live, 60)
    assert post(client, "/v1/backup", {"namespace": "e2e-rs", "pvc": "latest"}).status_code == 200
    body = post(client, "/v1/restores", {"namespace": "e2e-rs", "pvc": "latest", "target_pvc": "latest-r",
                                         "dry_run": True}).json()
    assert body["backup"] == first["name"]


def _no_orphans(live, before_volumes, target_namespace, target_pvc):
    assert _volume_names(live) == before_volumes
    assert kubernetes.find_pvc(target_namespace, target_pvc) is None
    assert not kubernetes.list_pvcs_labelled("soteria.io/restored-from") or all(
        p.name != target_pvc for p in kubernetes.list_pvcs_labelled("soteria.io/restored-from"))
    restored_pvs = [pv for pv in kubernetes.list_pvs() if pv.claim_name == target_pvc
                    and pv.claim_namespace == target_namespace]
    assert restored_pvs == []


def test_cleanup_when_longhorn_refuses_the_volume(client, live):
    _backed_up(client, live, "e2e-clean", "a")
    before = _volume_names(live)
    faults.inject(live, "volume.create", message="insufficient storage")
    response = post(client, "/v1/restores", {"namespace": "e2e-clean", "pvc": "a", "target_pvc": "r1"})
    assert response.status_code == 502 and "insufficient storage" in response.json()["detail"]
    assert response.json()["cleanup"] == {"succeeded": True, "deleted": [], "errors": []}
    _no_orphans(live, before, "e2e-clean", "r1")


def test_cleanup_when_longhorn_never_accepts_the_volume(client, live, monkeypatch):
    from backups.clients import longhorn

    _backed_up(client, live, "e2e-clean", "b")
    before = _volume_names(live)
    real_get = longhorn.get_volume

    def silent_about_new_volumes(name):
        if name not in before:  # the restore volume: Longhorn created it, then stops answering about it
            from soteria_site.core.errors import UpstreamTimeout
            raise UpstreamTimeout("longhorn", f"Longhorn did not answer volumes.get for {name} in time")
        return real_get(name)

    monkeypatch.setattr(longhorn, "get_volume", silent_about_new_volumes)
    response = post(client, "/v1/restores", {"namespace": "e2e-clean", "pvc": "b", "target_pvc": "r2"})
    assert response.status_code == 504
    assert response.json()["cleanup"]["succeeded"] is True
    assert [d.split()[0] for d in response.json()["cleanup"]["deleted"]] == ["volume"]
    wait_for(lambda: _volume_names(live) == before, what="the restore volume to be deleted")
    _no_orphans(live, before, "e2e-clean", "r2")


def test_cleanup_when_the_pv_cannot_be_created(client, live, monkeypatch):
    _backed_up(client, live, "e2e-clean", "c")
    before = _volume_names(live)

    def refuse(body):
        raise UpstreamError("kubernetes", "Kubernetes rejected pvs.create: admission webhook denied the request")
    monkeypatch.setattr(kubernetes, "create_pv", refuse)
    response = post(client, "/v1/restores", {"namespace": "e2e-clean", "pvc": "c", "target_pvc": "r3"})
    assert response.status_code == 502 and "admission webhook" in response.json()["detail"]
    assert [d.split()[0] for d in response.json()["cleanup"]["deleted"]] == ["volume"]
    wait_for(lambda: _volume_names(live) == before, what="the restore volume to be deleted")
    _no_orphans(live, before, "e2e-clean", "r3")


def test_cleanup_when_the_pvc_cannot_be_created(client, live):
    _backed_up(client, live, "e2e-clean", "d")
    seed.ensure_basics(live, ["e2e-quota"])
    kube(live).create_namespaced_resource_quota("e2e-quota", {"metadata": {"name": "no-claims"},
                                                              "spec": {"hard": {"persistentvolumeclaims": "0"}}})
    wait_for(lambda: kube(live).read_namespaced_resource_quota("no-claims", "e2e-quota").status.hard,
             what="quota active")
    before = _volume_names(live)
    response = post(client, "/v1/restores", {"namespace": "e2e-clean", "pvc": "d", "target_namespace": "e2e-quota",
                                             "target_pvc": "r4"})
    assert response.status_code == 502 and "exceeded quota" in response.json()["detail"]
    assert [d.split()[0] for d in response.json()["cleanup"]["deleted"]] == ["pv", "volume"]
    wait_for(lambda: _volume_names(live) == before, what="the restore volume to be deleted")
    _no_orphans(live, before, "e2e-quota", "r4")


def test_two_simultaneous_restores_to_one_target_one_wins(live):
    client = Client()
    _backed_up(client, live, "e2e-race", "src")
    before = _volume_names(live)
    barrier = threading.Barrier(2)
    statuses = []

    def go():
        from django.db import connections
        barrier.wait()
        statuses.append(post(Client(), "/v1/restores", {"namespace": "e2e-race", "pvc": "src",
                                                        "target_pvc": "winner"}).status_code)
        connections.close_all()

    threads = [threading.Thread(target=go) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    assert len(_volume_names(live) - before) == 1


def test_namespace_restore_plan_matches_execution(client, live):
    for name in ("alpha", "beta"):
        _backed_up(client, live, "e2e-nsr", name)
    seed.make_pvc(live, "e2e-nsr", "never")
    seed.ensure_basics(live, ["e2e-nsr-copy"])
    request = {"namespace": "e2e-nsr", "target_namespace": "e2e-nsr-copy", "target_prefix": "copy-"}
    plan = post(client, "/v1/restores/namespace", {**request, "dry_run": True}).json()
    done = post(client, "/v1/restores/namespace", request).json()
    planned = {r["pvc"]: (r["target_pvc"], r["backup"]) for r in plan["results"] if r["status"] == "planned"}
    queued = {r["pvc"]: (r["target_pvc"], r["backup"]) for r in done["results"] if r["status"] == "queued"}
    assert planned == queued and set(planned) == {"alpha", "beta"}
    assert {r["pvc"]: r["error"] for r in done["results"] if r["status"] == "skipped"} == {"never": "no_backup"}
    for name in ("alpha", "beta"):
        _restored(client, "e2e-nsr-copy", f"copy-{name}")
    again = post(client, "/v1/restores/namespace", {**request, "dry_run": True}).json()
    assert {r["error"] for r in again["results"] if r["pvc"] in ("alpha", "beta")} == {"target_exists"}


def test_the_legacy_alias_restores_too(client, live):
    _backed_up(client, live, "e2e-rs", "alias")
    response = post(client, "/v1/restore-test", {"namespace": "e2e-rs", "pvc": "alias", "target_pvc": "alias-r"})
    assert response.status_code == 200
    _restored(client, "e2e-rs", "alias-r")
