"""pvCreate, pvcCreate and kubernetesStatus against a real kube-apiserver 1.20."""

from __future__ import annotations

import json

import pytest
from kubernetes import client, config

from tests.support.emulator import PORT_KUBE, EmulatorProcess, error_body
from tests.support.polling import wait_for


@pytest.fixture(scope="module")
def core(kube_cluster):
    return client.CoreV1Api(config.new_client_from_config(config_file=str(kube_cluster.kubeconfig)))


@pytest.fixture(scope="module")
def kube_emulator(kube_cluster, tmp_path_factory):
    process = EmulatorProcess(PORT_KUBE, tmp_path_factory.mktemp("lhkube") / "state",
                              kubeconfig=kube_cluster.kubeconfig).start()
    yield process
    process.stop()
    assert process.proc.poll() is not None


@pytest.fixture
def klh(kube_emulator):
    kube_emulator.client.reset()
    return kube_emulator.client


def kube_status(lh, volume: str, **expected) -> dict:
    """Wait until the volume's kubernetesStatus has the expected fields."""
    return wait_for(lambda: (lambda s: s if all(s[k] == v for k, v in expected.items()) else None)(
        lh.volume(volume)["kubernetesStatus"]), what=f"kubernetesStatus {expected}")


def test_pv_create_makes_a_longhorn_csi_pv(klh, core):
    klh.ready_volume("vol-pv", size="2Gi", numberOfReplicas=2, staleReplicaTimeout=30)
    response = klh.action("volumes", "vol-pv", "pvCreate", {"pvName": "pv-vol-pv", "fsType": "ext4"})
    assert response.status_code == 200 and response.json()["type"] == "volume"
    pv = core.read_persistent_volume("pv-vol-pv")
    assert pv.spec.csi.driver == "driver.longhorn.io" and pv.spec.csi.volume_handle == "vol-pv"
    assert pv.spec.csi.fs_type == "ext4"
    assert pv.spec.csi.volume_attributes == {"diskSelector": "", "nodeSelector": "", "numberOfReplicas": "2",
                                             "staleReplicaTimeout": "30"}
    assert pv.spec.persistent_volume_reclaim_policy == "Retain" and pv.spec.volume_mode == "Filesystem"
    assert pv.spec.capacity == {"storage": "2Gi"} and pv.spec.access_modes == ["ReadWriteOnce"]
    assert pv.spec.storage_class_name == "longhorn-static" and pv.spec.claim_ref is None
    kube_status(klh, "vol-pv", pvName="pv-vol-pv", pvStatus="Available")
    error_body(klh.action("volumes", "vol-pv", "pvCreate", {}), 500,
               "unable to create PV for volume vol-pv: volume already had PV pv-vol-pv")


def test_pv_create_defaults_and_refusals(klh, core):
    klh.ready_volume("vol-small", size="100Mi")
    error_body(klh.action("volumes", "vol-small", "pvCreate", {"fsType": "xfs"}), 500,
               "XFS filesystems with size 104857600, smaller than 314572800, are not supported")
    klh.action("volumes", "vol-small", "pvCreate", {"storageClassName": "fast"})
    pv = core.read_persistent_volume("vol-small")  # pvName defaults to the volume name
    assert pv.spec.storage_class_name == "fast" and pv.spec.csi.fs_type == "ext4"
    klh.ready_volume("vol-taken")
    error_body(klh.action("volumes", "vol-taken", "pvCreate", {"pvName": "vol-small"}), 500,
               'unable to create PV for volume vol-taken: persistentvolumes "vol-small" already exists')


def test_pvc_create_binds_a_claim_to_the_pv(klh, core):
    klh.ready_volume("vol-pvc", accessMode="rwx")
    klh.action("volumes", "vol-pvc", "pvCreate", {"pvName": "pv-vol-pvc"})
    response = klh.action("volumes", "vol-pvc", "pvcCreate", {"namespace": "default", "pvcName": "claim-pvc"})
    assert response.status_code == 200, response.text
    pvc = core.read_namespaced_persistent_volume_claim("claim-pvc", "default")
    assert pvc.spec.volume_name == "pv-vol-pvc" and pvc.spec.storage_class_name == "longhorn-static"
    assert pvc.spec.access_modes == ["ReadWriteMany"] and pvc.spec.resources.requests == {"storage": "1Gi"}
    status = kube_status(klh, "vol-pvc", pvStatus="Bound", pvcName="claim-pvc", namespace="default")
    assert status["lastPVCRefAt"] == ""
    error_body(klh.action("volumes", "vol-pvc", "pvcCreate", {"namespace": "default"}), 500,
               "unable to create PVC for volume vol-pvc: volume already had PVC claim-pvc")


def test_pvc_create_without_a_pv_gives_up_after_polling(klh):
    klh.ready_volume("vol-nopv")
    error_body(klh.action("volumes", "vol-nopv", "pvcCreate", {"namespace": "default"}), 500,
               "unable to create PVC for volume vol-nopv: cannot found PV  or the PV status  is invalid for PVC creation")


def test_workloads_backups_and_history_follow_the_cluster(klh, core):
    klh.ready_volume("vol-app")
    core.create_namespace({"metadata": {"name": "shop"}})
    core.create_namespaced_persistent_volume_claim("shop", {
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "longhorn",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    klh.action("volumes", "vol-app", "pvCreate", {"pvName": "pv-app", "storageClassName": "longhorn"})
    core.patch_persistent_volume("pv-app", {"spec": {"claimRef": {"namespace": "shop", "name": "data"}}})
    core.create_namespaced_pod("shop", {
        "metadata": {"name": "web-0"},
        "spec": {"containers": [{"name": "web", "image": "nginx"}],
                 "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]}})
    status = wait_for(lambda: (lambda s: s if s["workloadsStatus"] else None)(
        kube_status(klh, "vol-app", pvStatus="Bound", pvcName="data", namespace="shop")), what="workloads")
    assert status["workloadsStatus"] == [{"podName": "web-0", "podStatus": "Pending", "workloadName": "",
                                          "workloadType": ""}]
    # A backup records the binding and the claim's storage class for the restore.
    backup_status = klh.backup("vol-app", "snap-1")
    backup = klh.action("backupvolumes", "vol-app", "backupGet", {"name": backup_status["id"]}).json()
    assert json.loads(backup["labels"]["KubernetesStatus"])["pvcName"] == "data"
    assert klh.get("/v1/backupvolumes/vol-app").json()["storageClassName"] == "longhorn"
    klh.create_volume("vol-app-restored", fromBackup=backup_status["backupURL"])
    klh.wait_volume("vol-app-restored", lambda v: not v["restoreRequired"] and v["state"] == "detached")
    klh.action("volumes", "vol-app-restored", "pvCreate", {})
    assert core.read_persistent_volume("vol-app-restored").spec.storage_class_name == "longhorn"
    # When the PV goes away, what the volume knew becomes history.
    core.delete_namespaced_pod("web-0", "shop", grace_period_seconds=0)
    core.delete_persistent_volume("pv-app")
    history = kube_status(klh, "vol-app", pvName="", pvStatus="")
    assert history["pvcName"] == "data" and history["lastPVCRefAt"] and history["lastPodRefAt"]


def test_pv_create_needs_a_kubeconfig(lh):
    lh.ready_volume("vol-a")
    error_body(lh.action("volumes", "vol-a", "pvCreate", {}), 500,
               "unable to create PV for volume vol-a: the sandbox Longhorn emulator was started without --kubeconfig")
