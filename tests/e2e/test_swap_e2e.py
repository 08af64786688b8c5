"""Issue 18 end to end: a restored claim swapped in under a real Deployment and a real
StatefulSet (the sandbox's controller-manager scales them, the kubelet stand-in runs their
pods), then undone, with the specs and the claim and volume bindings checked each time."""

import pytest

from backups.services import manifest_collection
from sandbox import seed
from tests.support.http import post
from tests.support.kube import apps, kube, pod_template, workload_settled
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)
NS = "e2e-swap"


@pytest.fixture(autouse=True)
def _short_waits(settings):
    settings.SOTERIA_SWAP_WAIT_SECONDS = 60


def _restored_copy(client, cfg, pvc: str, target: str) -> None:
    """`pvc` with a file and one Completed backup, restored into `target` (Bound)."""
    seed.make_pvc(cfg, NS, pvc, files={"v.txt": "version 1\n"})
    assert post(client, "/v1/backup", {"namespace": NS, "pvc": pvc}).status_code == 200
    wait_for(lambda: any(b["state"] == "Completed" for b in
                         client.get(f"/v1/backups?namespace={NS}&pvc={pvc}").json()["backups"]), what="backup")
    response = post(client, "/v1/restores", {"namespace": NS, "pvc": pvc, "target_pvc": target})
    assert response.status_code == 200, response.content
    wait_for(lambda: kube(cfg).read_namespaced_persistent_volume_claim(target, NS).status.phase == "Bound",
             what=f"{target} bound")
    # The backup's manifest Job, once collected, is deleted with its pod (the worker's schedule
    # does this): Kubernetes 1.20 keeps a claim that a finished pod names from being deleted.
    wait_for(lambda: manifest_collection.collect(NS, pvc)["collected"] == 1, 60, what="manifest collected")
    wait_for(lambda: not [p for p in kube(cfg).list_namespaced_pod(NS).items
                          if any(v.persistent_volume_claim and v.persistent_volume_claim.claim_name == pvc
                                 for v in p.spec.volumes or ())], 60, what="the manifest Job's pod gone")


def _pods_mounting(cfg, claim: str) -> list[str]:
    return [p.metadata.name for p in kube(cfg).list_namespaced_pod(NS).items
            if not p.metadata.deletion_timestamp
            and any(v.persistent_volume_claim and v.persistent_volume_claim.claim_name == claim
                    for v in p.spec.volumes or ())
            and p.status.phase == "Running"]


def _settled(cfg, kind: str, name: str, replicas: int) -> bool:
    return workload_settled(cfg, NS, kind, name, replicas)


def _claim_name(cfg, name: str) -> str:
    volumes = apps(cfg).read_namespaced_deployment(name, NS).spec.template.spec.volumes
    return next(v.persistent_volume_claim.claim_name for v in volumes if v.persistent_volume_claim)


def test_a_deployment_is_swapped_onto_the_restored_claim_and_undone(client, live):
    _restored_copy(client, live, "web-data", "web-data-restored")
    apps(live).create_namespaced_deployment(NS, {
        "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": pod_template("web", [{"name": "data", "persistentVolumeClaim": {"claimName": "web-data"}}],
                                          [{"name": "data", "mountPath": "/data"}])}})
    wait_for(lambda: _settled(live, "Deployment", "web", 2), 60, what="web running")

    plan = post(client, "/v1/restores/swap", {"namespace": NS, "pvc": "web-data", "restored_pvc": "web-data-restored",
                                              "dry_run": True})
    assert plan.status_code == 200, plan.content
    assert [s["action"] for s in plan.json()["steps"]] == ["record", "scale", "wait_pods_gone", "point_volume",
                                                           "scale", "wait_ready"]
    assert _claim_name(live, "web") == "web-data"  # a plan changes nothing

    swapped = post(client, "/v1/restores/swap", {"namespace": NS, "pvc": "web-data",
                                                 "restored_pvc": "web-data-restored"})
    assert swapped.status_code == 200, swapped.content
    assert {s["status"] for s in swapped.json()["steps"]} == {"done"}
    assert _claim_name(live, "web") == "web-data-restored"
    assert apps(live).read_namespaced_deployment("web", NS).spec.replicas == 2
    wait_for(lambda: len(_pods_mounting(live, "web-data-restored")) == 2, 60, what="pods on the restored claim")
    assert _pods_mounting(live, "web-data") == []
    # The claims themselves are untouched.
    assert kube(live).read_namespaced_persistent_volume_claim("web-data", NS).status.phase == "Bound"
    reasons = [e.reason for e in kube(live).list_namespaced_event(NS).items
               if e.involved_object.name == "web-data" and e.reason.startswith("Swap")]
    assert reasons.count("Swap") == 6

    # A second swap while this one is in place is refused.
    again = post(client, "/v1/restores/swap", {"namespace": NS, "pvc": "web-data", "restored_pvc": "web-data-restored"})
    assert again.status_code == 409 and again.json()["error"] == "swap_in_place"

    undone = post(client, "/v1/restores/swap/undo", {"namespace": NS, "pvc": "web-data"})
    assert undone.status_code == 200, undone.content
    assert _claim_name(live, "web") == "web-data"
    assert "soteria.io/swap" not in (apps(live).read_namespaced_deployment("web", NS).metadata.annotations or {})
    wait_for(lambda: len(_pods_mounting(live, "web-data")) == 2, 60, what="pods back on the original claim")
    assert _pods_mounting(live, "web-data-restored") == []


def test_a_statefulsets_claim_is_rebound_to_the_restored_volume_and_undone(client, live):
    _restored_copy(client, live, "data-db-0", "data-db-0-restored")
    core = kube(live)
    old_pv = core.read_namespaced_persistent_volume_claim("data-db-0", NS).spec.volume_name
    new_pv = core.read_namespaced_persistent_volume_claim("data-db-0-restored", NS).spec.volume_name
    apps(live).create_namespaced_stateful_set(NS, {
        "metadata": {"name": "db"},
        "spec": {"replicas": 1, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                 "template": pod_template("db", [], [{"name": "data", "mountPath": "/data"}]),
                 "volumeClaimTemplates": [{"metadata": {"name": "data"},
                                           "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
                                                    "resources": {"requests": {"storage": "1Gi"}}}}]}})
    wait_for(lambda: _settled(live, "StatefulSet", "db", 1), 60, what="db running")

    swapped = post(client, "/v1/restores/swap", {"namespace": NS, "pvc": "data-db-0",
                                                 "restored_pvc": "data-db-0-restored"})
    assert swapped.status_code == 200, swapped.content
    assert swapped.json()["mode"] == "claim" and swapped.json()["workload"] == {"kind": "StatefulSet", "name": "db"}
    claim = core.read_namespaced_persistent_volume_claim("data-db-0", NS)
    assert claim.spec.volume_name == new_pv and claim.status.phase == "Bound"
    assert not any(p.metadata.name == "data-db-0-restored"
                   for p in core.list_namespaced_persistent_volume_claim(NS).items)
    old, new = core.read_persistent_volume(old_pv), core.read_persistent_volume(new_pv)
    assert old.spec.persistent_volume_reclaim_policy == "Retain" and old.status.phase == "Released"
    assert new.spec.claim_ref.name == "data-db-0" and new.spec.claim_ref.uid == claim.metadata.uid
    wait_for(lambda: _pods_mounting(live, "data-db-0") == ["db-0"], 60, what="db-0 back on its (restored) claim")

    undone = post(client, "/v1/restores/swap/undo", {"namespace": NS, "pvc": "data-db-0"})
    assert undone.status_code == 200, undone.content
    claim = core.read_namespaced_persistent_volume_claim("data-db-0", NS)
    assert claim.spec.volume_name == old_pv and claim.status.phase == "Bound"
    restored = core.read_namespaced_persistent_volume_claim("data-db-0-restored", NS)
    assert restored.spec.volume_name == new_pv and restored.status.phase == "Bound"
    assert apps(live).read_namespaced_stateful_set("db", NS).spec.replicas == 1
    wait_for(lambda: _pods_mounting(live, "data-db-0") == ["db-0"], 60, what="db-0 on its own claim again")


def test_bare_pods_and_autoscalers_are_refused_and_nothing_changes(client, live):
    _restored_copy(client, live, "shared", "shared-restored")
    apps(live).create_namespaced_deployment(NS, {
        "metadata": {"name": "shared-app"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "shared-app"}},
                 "template": pod_template("shared-app",
                                          [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
                                          [{"name": "data", "mountPath": "/data"}])}})
    bare = pod_template("debug", [{"name": "data", "persistentVolumeClaim": {"claimName": "shared"}}],
                        [{"name": "data", "mountPath": "/data"}])
    kube(live).create_namespaced_pod(NS, {"metadata": {"name": "debug", **bare["metadata"]}, "spec": bare["spec"]})
    wait_for(lambda: _settled(live, "Deployment", "shared-app", 1), 60, what="shared-app running")
    body = {"namespace": NS, "pvc": "shared", "restored_pvc": "shared-restored"}
    refused = post(client, "/v1/restores/swap", body)
    assert refused.status_code == 409 and refused.json()["error"] == "mounted_by_other_pods"
    assert "debug" in refused.json()["detail"]
    kube(live).delete_namespaced_pod("debug", NS, grace_period_seconds=0)

    from kubernetes import client as k8s
    from kubernetes import config

    autoscaling = k8s.AutoscalingV1Api(config.new_client_from_config(config_file=str(live.kubeconfig)))
    autoscaling.create_namespaced_horizontal_pod_autoscaler(NS, {
        "metadata": {"name": "shared-app"},
        "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "shared-app"},
                 "minReplicas": 1, "maxReplicas": 3}})
    refused = post(client, "/v1/restores/swap", body)
    assert refused.status_code == 409 and refused.json()["error"] == "hpa_managed"
    deployment = apps(live).read_namespaced_deployment("shared-app", NS)
    assert deployment.spec.replicas == 1 and "soteria.io/swap" not in (deployment.metadata.annotations or {})
    assert _claim_name(live, "shared-app") == "shared"
