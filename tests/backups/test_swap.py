"""Swapping a restored claim into place, and undoing it, at the client seam (docs/swap.md)."""

from dataclasses import replace

import pytest

from backups.clients.workloads import Autoscaler, PodUse
from soteria_site.core.errors import UpstreamError
from soteria_site.web.models import AuditEntry
from tests.support.fake_workloads import DEPLOYMENT, STATEFULSET, FakeApps, deployment, statefulset

pytestmark = pytest.mark.django_db(transaction=True)
MUTATIONS = ("patch_workload", "scale_workload", "patch_pv", "create_pvc", "delete_pvc")


def _post(client, body, path="/v1/restores/swap"):
    return client.post(path, body, content_type="application/json")


@pytest.fixture
def apps(cluster, monkeypatch):
    from backups.services import swap_steps

    def no_sleep(seconds):
        raise AssertionError("the fake's controllers act at once: a swap never needs to wait here")
    monkeypatch.setattr(swap_steps, "sleep", no_sleep)
    cluster.add_pvc("shop", "data", size="1Gi")
    cluster.add_pvc("shop", "data-restored", size="2Gi")
    cluster.add_pvc("shop", "data-db-0", size="1Gi")
    cluster.add_pvc("shop", "data-db-0-restored", size="1Gi")
    # A restic restore's volume comes from a provisioner: reclaim policy Delete.
    pv = cluster.pvcs[("shop", "data-db-0-restored")].volume_name
    cluster.pvs[pv] = replace(cluster.pvs[pv], reclaim_policy="Delete")
    cluster.pvcs[("shop", "data-db-0")] = replace(cluster.pvcs[("shop", "data-db-0")], labels={"app": "db"})
    fake = FakeApps(cluster).install(monkeypatch)
    fake.add(DEPLOYMENT, deployment("shop", "web", "data", replicas=2))
    fake.add(STATEFULSET, statefulset("shop", "db", "data", replicas=1))
    return fake


def _claim_of(apps, name="web"):
    volumes = apps.obj(DEPLOYMENT, "shop", name)["spec"]["template"]["spec"]["volumes"]
    return next(v["persistentVolumeClaim"]["claimName"] for v in volumes if "persistentVolumeClaim" in v)


def _mutations(cluster):
    return {k: v for k, v in cluster.calls.items() if k in MUTATIONS}


def test_a_dry_run_plans_every_step_and_changes_nothing(client, apps, cluster):
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored", "dry_run": True})
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["workload"] == {"kind": "Deployment", "name": "web"} and body["mode"] == "volume"
    assert body["replicas"] == 2 and body["dry_run"] is True
    assert [s["action"] for s in body["steps"]] == ["record", "scale", "wait_pods_gone", "point_volume", "scale",
                                                    "wait_ready"]
    assert {s["status"] for s in body["steps"]} == {"planned"}
    assert "from PVC data to PVC data-restored" in body["steps"][3]["detail"]
    assert _mutations(cluster) == {} and apps.record(DEPLOYMENT, "shop", "web") is None


def test_a_deployment_is_pointed_at_the_restored_claim_and_undo_puts_it_back(client, apps, cluster):
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored",
                              "workload": {"kind": "Deployment", "name": "web"}})
    assert response.status_code == 200, response.content
    assert [s["status"] for s in response.json()["steps"]] == ["done"] * 6
    assert _claim_of(apps) == "data-restored"
    assert apps.obj(DEPLOYMENT, "shop", "web")["spec"]["replicas"] == 2
    assert apps.scaled == [(DEPLOYMENT, "web", 0), (DEPLOYMENT, "web", 2)]
    assert apps.record(DEPLOYMENT, "shop", "web")["pvc"] == "data"
    # The ConfigMap volume beside it is untouched; the claims and volumes too.
    assert apps.obj(DEPLOYMENT, "shop", "web")["spec"]["template"]["spec"]["volumes"][0]["configMap"] == {"name": "x"}
    assert ("shop", "data") in cluster.pvcs and cluster.calls["delete_pvc"] == 0
    assert [e["reason"] for e in cluster.events] == ["Swap"] * 6
    assert AuditEntry.objects.filter(action="swap.swap.step").count() == 6
    assert AuditEntry.objects.filter(action="swap.create", status=200).count() == 1

    undone = _post(client, {"namespace": "shop", "pvc": "data"}, "/v1/restores/swap/undo")
    assert undone.status_code == 200, undone.content
    assert [s["action"] for s in undone.json()["steps"]] == ["scale", "wait_pods_gone", "point_volume", "scale",
                                                             "wait_ready", "forget"]
    assert _claim_of(apps) == "data" and apps.obj(DEPLOYMENT, "shop", "web")["spec"]["replicas"] == 2
    assert apps.record(DEPLOYMENT, "shop", "web") is None
    assert "soteria.io/swap" not in apps.obj(DEPLOYMENT, "shop", "web")["metadata"]["annotations"]
    # A second undo has nothing to undo.
    again = _post(client, {"namespace": "shop", "pvc": "data"}, "/v1/restores/swap/undo")
    assert again.status_code == 404 and again.json()["error"] == "no_swap"


def test_a_statefulsets_claim_is_recreated_on_the_restored_volume_and_undo_brings_back_the_old_one(
        client, apps, cluster):
    old_pv = cluster.pvcs[("shop", "data-db-0")].volume_name
    new_pv = cluster.pvcs[("shop", "data-db-0-restored")].volume_name
    plan = _post(client, {"namespace": "shop", "pvc": "data-db-0", "restored_pvc": "data-db-0-restored",
                          "dry_run": True}).json()
    assert plan["mode"] == "claim" and plan["workload"] == {"kind": "StatefulSet", "name": "db"}
    assert [s["action"] for s in plan["steps"]] == ["record", "scale", "wait_pods_gone", "retain_pv", "retain_pv",
                                                    "delete_pvc", "delete_pvc", "bind_pv", "create_pvc", "scale",
                                                    "wait_ready"]
    response = _post(client, {"namespace": "shop", "pvc": "data-db-0", "restored_pvc": "data-db-0-restored"})
    assert response.status_code == 200, response.content
    claim = cluster.pvcs[("shop", "data-db-0")]
    assert claim.volume_name == new_pv and claim.phase == "Bound" and claim.labels == {"app": "db"}
    assert ("shop", "data-db-0-restored") not in cluster.pvcs
    assert cluster.pvs[old_pv].reclaim_policy == "Retain" and cluster.pvs[old_pv].phase == "Released"
    assert cluster.pvs[new_pv].reclaim_policy == "Retain"
    assert (cluster.pvs[new_pv].claim_namespace, cluster.pvs[new_pv].claim_name) == ("shop", "data-db-0")
    assert apps.obj(STATEFULSET, "shop", "db")["spec"]["replicas"] == 1

    undone = _post(client, {"namespace": "shop", "pvc": "data-db-0"}, "/v1/restores/swap/undo")
    assert undone.status_code == 200, undone.content
    assert cluster.pvcs[("shop", "data-db-0")].volume_name == old_pv
    assert cluster.pvcs[("shop", "data-db-0-restored")].volume_name == new_pv
    assert cluster.pvs[old_pv].reclaim_policy == "Retain"  # as the fake cluster made it
    assert cluster.pvs[new_pv].reclaim_policy == "Delete"  # back as it was
    assert apps.record(STATEFULSET, "shop", "db") is None
    assert apps.obj(STATEFULSET, "shop", "db")["spec"]["replicas"] == 1


def test_an_undo_puts_back_a_swap_that_stopped_part_way(client, apps, cluster):
    old_pv = cluster.pvcs[("shop", "data-db-0")].volume_name
    new_pv = cluster.pvcs[("shop", "data-db-0-restored")].volume_name
    cluster.fail["create_pvc"] = UpstreamError("kubernetes", "Kubernetes rejected pvcs.create: quota exceeded")
    response = _post(client, {"namespace": "shop", "pvc": "data-db-0", "restored_pvc": "data-db-0-restored"})
    assert response.status_code == 502, response.content
    body = response.json()
    assert "stopped at step 9 of 11 (create_pvc)" in body["detail"] and "quota exceeded" in body["detail"]
    assert [s["status"] for s in body["steps"]] == ["done"] * 3 + ["skipped"] + ["done"] * 4 + ["failed", "planned", "planned"]
    assert ("shop", "data-db-0") not in cluster.pvcs  # both claims are gone, both volumes kept
    assert cluster.pvs[old_pv].reclaim_policy == cluster.pvs[new_pv].reclaim_policy == "Retain"
    assert "SwapFailed" in [e["reason"] for e in cluster.events]

    del cluster.fail["create_pvc"]
    undone = _post(client, {"namespace": "shop", "pvc": "data-db-0"}, "/v1/restores/swap/undo")
    assert undone.status_code == 200, undone.content
    statuses = {s["action"]: s["status"] for s in undone.json()["steps"]}
    assert statuses["delete_pvc"] == "skipped"  # nothing left to delete
    assert cluster.pvcs[("shop", "data-db-0")].volume_name == old_pv
    assert cluster.pvcs[("shop", "data-db-0-restored")].volume_name == new_pv
    assert apps.obj(STATEFULSET, "shop", "db")["spec"]["replicas"] == 1


def _hpa(apps, cluster):
    apps.autoscalers.append(Autoscaler("shop", "web", DEPLOYMENT, "web"))


def _rolling(apps, cluster):
    apps.obj(DEPLOYMENT, "shop", "web")["status"]["updatedReplicas"] = 1


def _paused(apps, cluster):
    apps.obj(DEPLOYMENT, "shop", "web")["spec"]["paused"] = True


def _two_workloads(apps, cluster):
    apps.add(DEPLOYMENT, deployment("shop", "web2", "data", replicas=1))


def _bare_pod(apps, cluster):
    apps.bare_pods.append(PodUse("shop", "debug", ("data",), "", ""))


def _not_bound(apps, cluster):
    claim = cluster.pvcs[("shop", "data-restored")]
    cluster.pvcs[("shop", "data-restored")] = replace(claim, phase="Pending")


def _other_modes(apps, cluster):
    claim = cluster.pvcs[("shop", "data-restored")]
    cluster.pvcs[("shop", "data-restored")] = replace(claim, access_modes=("ReadWriteMany",))


def _smaller(apps, cluster):
    claim = cluster.pvcs[("shop", "data-restored")]
    cluster.pvcs[("shop", "data-restored")] = replace(claim, capacity="512Mi", requested="512Mi")


def _restored_in_use(apps, cluster):
    apps.add(DEPLOYMENT, deployment("shop", "reader", "data-restored", replicas=1))


def _swapped_already(apps, cluster):
    annotations = apps.obj(DEPLOYMENT, "shop", "web")["metadata"]["annotations"]
    annotations["soteria.io/swap"] = '{"version": 1, "pvc": "data", "restored_pvc": "old-copy", "mode": "volume"}'


def _nobody_mounts(apps, cluster):
    apps.objects.pop((DEPLOYMENT, "shop", "web"))


@pytest.mark.parametrize("arrange, code", [
    (_hpa, "hpa_managed"), (_rolling, "workload_not_settled"), (_paused, "workload_not_settled"),
    (_two_workloads, "several_workloads"), (_bare_pod, "mounted_by_other_pods"), (_not_bound, "restored_not_bound"),
    (_other_modes, "access_modes_differ"), (_smaller, "restored_smaller"), (_restored_in_use, "restored_in_use"),
    (_swapped_already, "swap_in_place"), (_nobody_mounts, "no_workload"),
], ids=lambda v: getattr(v, "__name__", v))
def test_a_workload_soteria_does_not_understand_is_refused_before_anything_changes(client, apps, cluster,
                                                                                   arrange, code):
    arrange(apps, cluster)
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"})
    assert response.status_code == 409, response.content
    assert response.json()["error"] == code, response.json()
    assert _mutations(cluster) == {} and cluster.events == []


def test_the_named_workload_must_be_the_one_that_mounts_the_claim(client, apps, cluster):
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored",
                              "workload": {"kind": "StatefulSet", "name": "db"}})
    assert response.status_code == 409 and response.json()["error"] == "workload_does_not_mount"
    assert response.json()["field"] == "workload" and _mutations(cluster) == {}


@pytest.mark.parametrize("body, field", [
    ({"namespace": "shop", "pvc": "data"}, "restored_pvc"),
    ({"namespace": "shop", "pvc": "data", "restored_pvc": "data"}, "restored_pvc"),
    ({"namespace": "Shop", "pvc": "data", "restored_pvc": "x"}, "namespace"),
    ({"namespace": "shop", "pvc": "data", "restored_pvc": "x", "workload": {"kind": "DaemonSet", "name": "a"}},
     "workload"),
    ({"namespace": "shop", "pvc": "data", "restored_pvc": "x", "workload": {"kind": "Deployment", "name": "a",
                                                                            "image": "evil"}}, "workload"),
    ({"namespace": "shop", "pvc": "data", "restored_pvc": "x", "force": True}, "force"),
    ({"namespace": "shop", "pvc": "data", "restored_pvc": "x" * 254}, "restored_pvc"),
])
def test_bad_input_is_refused_with_the_field_named(client, apps, cluster, body, field):
    response = _post(client, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"].split(".")[0] == field
    assert _mutations(cluster) == {}


def test_unknown_claims_are_404_naming_the_field(client, apps):
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "nope"})
    assert response.status_code == 404 and response.json()["field"] == "restored_pvc"


def test_swapping_needs_the_restore_permission_in_the_namespace(client, apps, auth_on, cluster):
    from tests.support.cast import CAST

    body = {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored", "dry_run": True}
    assert _post(client, body).status_code == 401
    assert client.post("/v1/restores/swap", body, content_type="application/json",
                       **CAST["viewer"].headers).status_code == 403
    assert client.post("/v1/restores/swap", body, content_type="application/json",
                       **CAST["scoped"].headers).status_code == 403  # restores in ai only
    assert client.post("/v1/restores/swap", body, content_type="application/json",
                       **CAST["admin"].headers).status_code == 200
    assert client.post("/v1/restores/swap/undo", {"namespace": "shop", "pvc": "data"},
                       content_type="application/json", **CAST["viewer"].headers).status_code == 403
    assert _mutations(cluster) == {}


def test_pods_that_have_ended_do_not_count_as_mounting_the_claim(client, apps, cluster):
    """A backup's finished manifest Job pod still names the claim; a running one blocks the swap."""
    apps.bare_pods.append(PodUse("shop", "soteria-manifest-data-1", ("data",), "Job", "soteria-manifest-data",
                                 phase="Succeeded"))
    body = {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored", "dry_run": True}
    assert _post(client, body).status_code == 200
    apps.bare_pods.append(PodUse("shop", "soteria-backup-data-2", ("data",), "Job", "soteria-backup-data"))
    refused = _post(client, body)
    assert refused.status_code == 409 and refused.json()["pod"] == "soteria-backup-data-2"


def test_without_the_swap_rights_the_answer_names_the_component_that_grants_them(client, apps, cluster):
    cluster.fail["list_workloads"] = UpstreamError("kubernetes", "Kubernetes refused deployments.list to Soteria: "
                                                   "forbidden", upstream_status=403)
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"})
    assert response.status_code == 502 and response.json()["error"] == "kubernetes_error"
    assert "deploy/overlays/swap" in response.json()["detail"]


def test_the_record_is_written_even_while_the_controller_keeps_updating_the_workload(client, apps, cluster,
                                                                                     monkeypatch):
    """Status updates move the resourceVersion between Soteria's read and its guarded patch."""
    from backups.clients import workloads

    patch, raced = workloads.patch_workload, []

    def racing(kind, namespace, name, operations):
        if len(raced) < 2:  # the controller updates the status just before each of the first two patches
            raced.append(name)
            meta = apps.obj(kind, namespace, name)["metadata"]
            meta["resourceVersion"] = str(int(meta["resourceVersion"]) + 1)
        return patch(kind, namespace, name, operations)
    monkeypatch.setattr(workloads, "patch_workload", racing)
    response = _post(client, {"namespace": "shop", "pvc": "data", "restored_pvc": "data-restored"})
    assert response.status_code == 200, response.content
    assert apps.record(DEPLOYMENT, "shop", "web")["restored_pvc"] == "data-restored" and len(raced) == 2
