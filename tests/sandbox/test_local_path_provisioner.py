"""The kubelet stand-in's `rancher.io/local-path` provisioner, driven through the real apiserver
and PV controller: claims get hostPath volumes, released volumes go with their directories."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from sandbox import kubelet
from sandbox.config import NODE_NAME
from sandbox.kubelet.provisioner import PROVISIONER, Provisioner
from tests.support.jobs import claim_volume, job_body, run_job
from tests.support.polling import wait_for

CLASSES = {"local-path": ("Delete", "Immediate"), "local-path-retain": ("Retain", "Immediate"),
           "local-path-wffc": ("Delete", "WaitForFirstConsumer")}


@pytest.fixture(scope="session")
def local_path_classes(kube_client):
    storage = client.StorageV1Api(kube_client)
    for name, (reclaim, binding) in CLASSES.items():
        try:
            storage.create_storage_class({"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
                                          "metadata": {"name": name}, "provisioner": PROVISIONER,
                                          "reclaimPolicy": reclaim, "volumeBindingMode": binding})
        except ApiException as exc:
            if exc.status != 409:
                raise
    return sorted(CLASSES)


def _claim(core, namespace: str, name: str, storage_class: str = "local-path", size: str = "2Gi",
           modes: tuple[str, ...] = ("ReadWriteOnce",)):
    return core.create_namespaced_persistent_volume_claim(namespace, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name},
        "spec": {"accessModes": list(modes), "storageClassName": storage_class,
                 "resources": {"requests": {"storage": size}}}})


def _bound(core, namespace: str, name: str, timeout: float = 15):
    """The claim once Bound, and its PV."""
    claim = wait_for(lambda: _read_bound(core, namespace, name), timeout, f"claim {name} to be bound")
    return claim, core.read_persistent_volume(claim.spec.volume_name)


def _read_bound(core, namespace: str, name: str):
    claim = core.read_namespaced_persistent_volume_claim(name, namespace)
    return claim if claim.status.phase == "Bound" else None


def _gone(read) -> bool:
    try:
        read()
    except ApiException as exc:
        if exc.status == 404:
            return True
        raise
    return False


def _full_pass(core, namespace: str, tag: str) -> None:
    """Return once a whole provisioner pass has started after this call: the pass that binds a
    first witness claim may still be running when it is Bound; the one that binds a second
    witness, created after that, started after it ended."""
    for n in (1, 2):
        _claim(core, namespace, f"witness-{tag}-{n}", size="1Mi")
        _bound(core, namespace, f"witness-{tag}-{n}")


def _volumes_of(core, namespace: str, name: str) -> list:
    return [pv for pv in core.list_persistent_volume().items
            if pv.spec.claim_ref and (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name) == (namespace, name)]


def test_claim_is_bound_to_a_host_path_volume_shaped_like_the_real_provisioners(
        core_v1, scratch_ns, kubelet_sandbox, local_path_classes):
    created = _claim(core_v1, scratch_ns, "data", size="3Gi", modes=("ReadWriteOnce", "ReadOnlyMany"))
    claim, pv = _bound(core_v1, scratch_ns, "data")

    assert pv.metadata.name == f"pvc-{created.metadata.uid}" == claim.spec.volume_name
    assert pv.metadata.annotations["pv.kubernetes.io/provisioned-by"] == PROVISIONER
    assert pv.spec.capacity == {"storage": "3Gi"}
    assert pv.spec.access_modes == ["ReadWriteOnce", "ReadOnlyMany"]
    assert pv.spec.storage_class_name == "local-path"
    assert pv.spec.persistent_volume_reclaim_policy == "Delete"
    assert (pv.spec.claim_ref.namespace, pv.spec.claim_ref.name, pv.spec.claim_ref.uid) == (
        scratch_ns, "data", created.metadata.uid)
    assert pv.spec.host_path.type == "DirectoryOrCreate"
    [term] = pv.spec.node_affinity.required.node_selector_terms
    assert [(e.key, e.values) for e in term.match_expressions] == [("kubernetes.io/hostname", [NODE_NAME])]
    path = Path(pv.spec.host_path.path)
    assert path.parent == kubelet_sandbox.local_volumes_dir
    assert path.name == f"pvc-{created.metadata.uid}_{scratch_ns}_data"
    assert path.is_dir()


def test_a_job_writes_into_the_provisioned_directory(core_v1, batch_v1, scratch_ns, local_path_classes):
    _claim(core_v1, scratch_ns, "scratch")
    body = job_body("writer", command=["sh", "-c", "echo written by a pod > /data/proof.txt"],
                    mounts=[{"name": "data", "mountPath": "/data"}], volumes=[claim_volume("data", "scratch")])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    _, pv = _bound(core_v1, scratch_ns, "scratch")
    assert (Path(pv.spec.host_path.path) / "proof.txt").read_text() == "written by a pod\n"


def test_deleting_the_claim_deletes_the_volume_and_its_directory(core_v1, scratch_ns, local_path_classes):
    _claim(core_v1, scratch_ns, "short-lived")
    _, pv = _bound(core_v1, scratch_ns, "short-lived")
    path = Path(pv.spec.host_path.path)
    (path / "file.txt").write_text("gone soon\n")

    core_v1.delete_namespaced_persistent_volume_claim("short-lived", scratch_ns)
    wait_for(lambda: _gone(lambda: core_v1.read_persistent_volume(pv.metadata.name)), 20,
             "the released volume to be deleted")
    assert not path.exists()


def test_a_retain_class_keeps_the_volume_and_its_directory(core_v1, scratch_ns, local_path_classes):
    _claim(core_v1, scratch_ns, "kept", storage_class="local-path-retain")
    _, pv = _bound(core_v1, scratch_ns, "kept")
    path = Path(pv.spec.host_path.path)
    (path / "file.txt").write_text("still here\n")
    assert pv.spec.persistent_volume_reclaim_policy == "Retain"
    try:
        core_v1.delete_namespaced_persistent_volume_claim("kept", scratch_ns)
        wait_for(lambda: core_v1.read_persistent_volume(pv.metadata.name).status.phase == "Released", 20,
                 "the volume to be released")
        _full_pass(core_v1, scratch_ns, "retain")
        assert core_v1.read_persistent_volume(pv.metadata.name).status.phase == "Released"
        assert (path / "file.txt").read_text() == "still here\n"
    finally:
        core_v1.delete_persistent_volume(pv.metadata.name)
        shutil.rmtree(path, ignore_errors=True)


def test_wait_for_first_consumer_claim_is_provisioned_once_a_pod_uses_it(
        core_v1, batch_v1, scratch_ns, local_path_classes):
    _claim(core_v1, scratch_ns, "later", storage_class="local-path-wffc")
    _full_pass(core_v1, scratch_ns, "wffc")
    assert core_v1.read_namespaced_persistent_volume_claim("later", scratch_ns).status.phase == "Pending"
    assert _volumes_of(core_v1, scratch_ns, "later") == []

    body = job_body("consumer", command=["sh", "-c", "echo first > /data/first.txt"],
                    mounts=[{"name": "data", "mountPath": "/data"}], volumes=[claim_volume("data", "later")])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    _, pv = _bound(core_v1, scratch_ns, "later")
    assert (Path(pv.spec.host_path.path) / "first.txt").read_text() == "first\n"


def test_a_restarted_stand_in_provisions_once_and_deletes_what_was_released_meanwhile(
        core_v1, scratch_ns, kubelet_sandbox, local_path_classes):
    _claim(core_v1, scratch_ns, "steady")
    steady, steady_pv = _bound(core_v1, scratch_ns, "steady")
    _claim(core_v1, scratch_ns, "dropped")
    _, dropped_pv = _bound(core_v1, scratch_ns, "dropped")

    kubelet.stop(kubelet_sandbox)
    try:
        core_v1.delete_namespaced_persistent_volume_claim("dropped", scratch_ns)
        wait_for(lambda: core_v1.read_persistent_volume(dropped_pv.metadata.name).status.phase == "Released", 20,
                 "the volume to be released while the stand-in is down")
        _claim(core_v1, scratch_ns, "meanwhile")
    finally:
        kubelet.start(kubelet_sandbox)

    _bound(core_v1, scratch_ns, "meanwhile")
    wait_for(lambda: _gone(lambda: core_v1.read_persistent_volume(dropped_pv.metadata.name)), 20,
             "the volume released meanwhile to be deleted")
    assert not Path(dropped_pv.spec.host_path.path).exists()
    assert [pv.metadata.name for pv in _volumes_of(core_v1, scratch_ns, "steady")] == [steady_pv.metadata.name]
    assert Path(steady_pv.spec.host_path.path).is_dir()


# --- one pass against recorded API answers: what it may delete -----------------------------
class _RecordedApi:
    """The provisioner's view of the API: fixed lists, and the calls it makes."""

    def __init__(self, pvs: list[dict], claims: list[dict] = (), classes: list[dict] = ()):
        self.pvs, self.claims, self.classes = pvs, list(claims), list(classes)
        self.created: list[dict] = []
        self.deleted: list[str] = []

    def list_storage_classes(self):
        return self.classes

    def list_claims(self):
        return self.claims

    def list_pvs(self):
        return self.pvs

    def list_namespaced_pods(self, namespace):
        return []

    def create_pv(self, body):
        if any(pv["metadata"]["name"] == body["metadata"]["name"] for pv in self.created):
            return False
        self.created.append(body)
        return True

    def delete_pv(self, pv):
        self.deleted.append(pv["metadata"]["name"])


def _released(name: str, path: Path, policy: str = "Delete") -> dict:
    return {"metadata": {"name": name, "uid": f"uid-{name}",
                         "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER}},
            "spec": {"persistentVolumeReclaimPolicy": policy, "hostPath": {"path": str(path)}},
            "status": {"phase": "Released"}}


def test_released_volumes_outside_the_volumes_directory_are_left_alone(tmp_path):
    volumes, outside = tmp_path / "volumes", tmp_path / "elsewhere"
    (volumes / "pvc-inside").mkdir(parents=True)
    outside.mkdir()
    (outside / "precious.txt").write_text("keep\n")
    (volumes / "pvc-link").symlink_to(outside)
    api = _RecordedApi([_released("inside", volumes / "pvc-inside"), _released("outside", outside),
                        _released("link", volumes / "pvc-link"), _released("escape", volumes / ".." / "elsewhere"),
                        _released("root", volumes), _released("kept", volumes / "pvc-inside", policy="Retain")])

    Provisioner(api, NODE_NAME, volumes).sync()

    assert api.deleted == ["inside"]
    assert not (volumes / "pvc-inside").exists()
    assert (outside / "precious.txt").read_text() == "keep\n" and volumes.is_dir()


def test_a_second_pass_creates_no_second_volume(tmp_path):
    local_path = {"metadata": {"name": "local-path"}, "provisioner": PROVISIONER}
    claim = {"metadata": {"name": "c", "namespace": "ns", "uid": "1234"},
             "spec": {"storageClassName": "local-path", "accessModes": ["ReadWriteOnce"],
                      "resources": {"requests": {"storage": "1Gi"}}}, "status": {"phase": "Pending"}}
    api = _RecordedApi([], [claim], [local_path])
    provisioner = Provisioner(api, NODE_NAME, tmp_path)

    provisioner.sync()
    provisioner.sync()

    [pv] = api.created
    assert pv["metadata"]["name"] == "pvc-1234"
    assert pv["spec"]["persistentVolumeReclaimPolicy"] == "Delete"  # the class says nothing: the default
    assert (tmp_path / "pvc-1234_ns_c").is_dir()
