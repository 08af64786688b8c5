"""Longhorn's CRs in the sandbox's real API server: registered, and tracking the emulator's state."""

from __future__ import annotations

import signal

import pytest
from kubernetes import client, config

from tests.support.emulator import PORT_KUBE, PORT_SPARE, EmulatorProcess
from tests.support.polling import wait_for

GROUP, VERSION = "longhorn.io", "v1beta2"


@pytest.fixture(scope="module")
def api(kube_cluster):
    return config.new_client_from_config(config_file=str(kube_cluster.kubeconfig))


@pytest.fixture(scope="module")
def crs(api):
    return client.CustomObjectsApi(api)


@pytest.fixture(scope="module")
def cr_emulator(kube_cluster, tmp_path_factory):
    process = EmulatorProcess(PORT_KUBE, tmp_path_factory.mktemp("lhcrs") / "state",
                              kubeconfig=kube_cluster.kubeconfig).start()
    yield process
    process.stop()


@pytest.fixture
def clh(cr_emulator):
    cr_emulator.client.reset()
    wait_mirrored(cr_emulator.client)
    return cr_emulator.client


def wait_mirrored(lh, timeout: float = 60) -> dict:
    def idle():
        status = lh.get("/sandbox/mirror").json()
        return status if status["ready"] and not status["pending"] and not status["busy"] \
            and not status["resyncPending"] else None
    return wait_for(idle, timeout, "the CR mirror to catch up")


def get_cr(crs, namespace: str, plural: str, name: str) -> dict | None:
    try:
        return crs.get_namespaced_custom_object(GROUP, VERSION, namespace, plural, name)
    except client.exceptions.ApiException as exc:
        if exc.status == 404:
            return None
        raise


def list_crs(crs, namespace: str, plural: str, selector: str = "") -> list[dict]:
    return crs.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, label_selector=selector)["items"]


def test_crds_are_registered_like_longhorns(api, cr_emulator):
    ext = client.ApiextensionsV1Api(api)
    for plural, kind, short in (("volumes", "Volume", "lhv"), ("backups", "Backup", "lhb"),
                                ("backupvolumes", "BackupVolume", "lhbv"), ("snapshots", "Snapshot", "lhs")):
        wait_for(lambda plural=plural: _crd(ext, plural), what=f"CRD {plural}")
        crd = ext.read_custom_resource_definition(f"{plural}.longhorn.io")
        assert crd.spec.group == "longhorn.io" and crd.spec.scope == "Namespaced"
        assert crd.spec.names.kind == kind and crd.spec.names.short_names == [short]
        assert [(v.name, v.served, v.storage) for v in crd.spec.versions] == [("v1beta2", True, True)]


def _crd(ext, plural):
    try:
        return ext.read_custom_resource_definition(f"{plural}.longhorn.io")
    except client.exceptions.ApiException:
        return None


def test_backup_crs_track_the_backup_from_start_to_completed(clh, crs, cr_emulator, tmp_path):
    ns = cr_emulator.namespace
    clh.post("/sandbox/config", {"op_seconds": 4})
    clh.ready_volume("vol-cr", files={"a.txt": b"hello"}, state_dir=cr_emulator.state_dir)
    wait_for(lambda: get_cr(crs, ns, "volumes", "vol-cr"), what="the Volume CR")
    assert clh.action("volumes", "vol-cr", "snapshotCRCreate", {"name": "snap-cr"}).status_code == 200
    clh.action("volumes", "vol-cr", "snapshotBackup", {"name": "snap-cr", "labels": {"team": "a"},
                                                       "backupMode": "full"})
    name = wait_for(lambda: next((s["id"] for s in clh.volume("vol-cr")["backupStatus"]), None), what="backup")
    states = set()

    def completed():
        cr = get_cr(crs, ns, "backups", name)
        if cr:
            states.add(cr["status"]["state"])
        return cr if cr and cr["status"]["state"] == "Completed" else None
    cr = wait_for(completed, 30, "the Backup CR to complete", interval=0.05)
    assert "InProgress" in states, states
    assert cr["metadata"]["labels"] == {"backup-volume": "vol-cr"}
    assert cr["spec"]["snapshotName"] == "snap-cr" and cr["spec"]["backupMode"] == "full"
    assert cr["spec"]["labels"]["team"] == "a"
    rest = clh.action("backupvolumes", "vol-cr", "backupGet", {"name": name}).json()
    status = cr["status"]
    assert status["progress"] == 100 and status["url"] == rest["url"] and "error" not in status  # omitempty
    assert status["size"] == rest["size"] and status["volumeName"] == "vol-cr"
    assert status["volumeSize"] == rest["volumeSize"] and status["snapshotName"] == "snap-cr"
    assert status["backupCreatedAt"] == rest["created"] and status["snapshotCreatedAt"] == rest["snapshotCreated"]
    assert status["lastSyncedAt"] and status["labels"]["team"] == "a"
    assert [b["metadata"]["name"] for b in list_crs(crs, ns, "backups", "backup-volume=vol-cr")] == [name]

    bv = wait_for(lambda: (lambda o: o if o and o["status"]["lastBackupName"] == name else None)(
        get_cr(crs, ns, "backupvolumes", "vol-cr")), what="the BackupVolume CR")
    assert bv["status"]["lastBackupAt"] == rest["created"] and int(bv["status"]["size"]) > 0
    volume = wait_for(lambda: (lambda o: o if o and o["status"]["lastBackup"] == name else None)(
        get_cr(crs, ns, "volumes", "vol-cr")), what="the Volume CR's lastBackup")
    assert volume["status"]["lastBackupAt"] == rest["created"]
    assert volume["spec"]["size"] == str(1 << 30) and volume["status"]["restoreRequired"] is False
    assert volume["status"]["robustness"] in ("unknown", "healthy")
    assert volume["status"]["kubernetesStatus"]["pvName"] == ""


def test_volume_cr_follows_state_and_deletion(clh, crs, cr_emulator):
    ns = cr_emulator.namespace
    clh.ready_volume("vol-state")
    wait_for(lambda: (lambda o: o and o["status"]["state"] == "detached")(get_cr(crs, ns, "volumes", "vol-state")),
             what="detached in the CR")
    clh.action("volumes", "vol-state", "attach", {"hostId": "sandbox-node"})
    cr = wait_for(lambda: (lambda o: o if o and o["status"]["state"] == "attached" else None)(
        get_cr(crs, ns, "volumes", "vol-state")), what="attached in the CR")
    assert cr["status"]["robustness"] == "healthy" and cr["status"]["currentNodeID"] == "sandbox-node"
    assert clh.delete("/v1/volumes/vol-state").status_code == 200
    wait_for(lambda: get_cr(crs, ns, "volumes", "vol-state") is None, what="the CR to go")


def test_seeded_backups_become_crs(clh, crs, cr_emulator):
    ns = cr_emulator.namespace
    seed = {"volumes": [{"name": f"seed-{i}", "backups": [{"state": "Completed"}, {"state": "Error"}]}
                        for i in range(20)]}
    assert clh.post("/sandbox/seed", seed).status_code == 200
    wait_mirrored(clh)
    assert len(list_crs(crs, ns, "volumes")) == 20
    backups = list_crs(crs, ns, "backups", "backup-volume=seed-7")
    assert sorted(b["status"]["state"] for b in backups) == ["Completed", "Error"]
    assert len(list_crs(crs, ns, "backupvolumes")) == 20


def test_crs_seeded_through_etcd_are_what_the_api_server_would_hold(kube_cluster, crs, tmp_path):
    """Benchmark seeding writes new CRs straight into etcd: the API server lists them with
    everything a create gives them, and an emulator restarted without etcd finds nothing to
    write: each CR is exactly what the API server path would have made of the store."""
    ns, state = "longhorn-etcd", tmp_path / "state"
    process = EmulatorProcess(PORT_SPARE, state, kubeconfig=kube_cluster.kubeconfig, namespace=ns,
                              etcd_url=f"http://127.0.0.1:{kube_cluster.port('etcd')}").start()
    try:
        seed = {"volumes": [{"name": f"etcd-{i}", "backups": [{"state": "Completed"}, {"state": "Error"}]}
                            for i in range(300)]}
        assert process.client.post("/sandbox/seed", seed).status_code == 200
        status = wait_mirrored(process.client)
        assert status["writes"] == 1200 and status["errors"] == 0  # volumes, backups, backup volumes
    finally:
        process.stop()
    assert len(list_crs(crs, ns, "volumes")) == 300 and len(list_crs(crs, ns, "backupvolumes")) == 300
    backups = list_crs(crs, ns, "backups")
    assert len(backups) == 600
    assert sorted(b["status"]["state"] for b in backups if b["metadata"]["labels"]["backup-volume"] == "etcd-7") \
        == ["Completed", "Error"]
    meta = backups[0]["metadata"]
    assert meta["uid"] and meta["resourceVersion"] and meta["creationTimestamp"] and meta["managedFields"]
    again = EmulatorProcess(PORT_SPARE, state, kubeconfig=kube_cluster.kubeconfig, namespace=ns).start()
    try:
        status = wait_mirrored(again.client)
        assert status["objects"] == 1200 and status["writes"] == 0 and status["deletes"] == 0
    finally:
        again.stop()


def test_crs_survive_a_crash_and_catch_up(kube_cluster, crs, tmp_path):
    process = EmulatorProcess(PORT_SPARE, tmp_path / "state", op_seconds=3, kubeconfig=kube_cluster.kubeconfig,
                              namespace="longhorn-restart").start()
    lh, ns = process.client, "longhorn-restart"
    try:
        lh.reset(op_seconds=3)
        lh.ready_volume("vol-restart", files={"f": b"x"}, state_dir=process.state_dir)
        lh.action("volumes", "vol-restart", "snapshotCRCreate", {"name": "snap-r"})
        lh.action("volumes", "vol-restart", "snapshotBackup", {"name": "snap-r"})
        name = wait_for(lambda: next((s["id"] for s in lh.volume("vol-restart")["backupStatus"]), None))
        wait_for(lambda: get_cr(crs, ns, "backups", name), what="the Backup CR")
        process.stop(signal.SIGKILL)
        # While it is down, someone deletes a CR and leaves a stray one: the restart repairs both.
        crs.delete_namespaced_custom_object(GROUP, VERSION, ns, "volumes", "vol-restart")
        crs.create_namespaced_custom_object(GROUP, VERSION, ns, "backups", {
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Backup", "metadata": {"name": "backup-stray"},
            "spec": {}, "status": {}})
        process.start()
        cr = wait_for(lambda: (lambda o: o if o and o["status"]["state"] == "Completed" else None)(
            get_cr(crs, ns, "backups", name)), 30, "the Backup CR to complete after the restart")
        assert cr["status"]["progress"] == 100
        wait_for(lambda: get_cr(crs, ns, "volumes", "vol-restart"), what="the Volume CR back")
        wait_for(lambda: get_cr(crs, ns, "backups", "backup-stray") is None, what="the stray CR gone")
    finally:
        process.stop(signal.SIGKILL)


def test_snapshot_cr_shows_the_attach_error_then_ready(clh, crs, cr_emulator):
    ns = cr_emulator.namespace
    clh.post("/sandbox/config", {"snapshot_attach_seconds": 2})
    clh.ready_volume("vol-snapcr")
    clh.action("volumes", "vol-snapcr", "snapshotCRCreate", {"name": "snap-cr-d"})
    waiting = wait_for(lambda: (lambda o: o if o and o["status"].get("error") else None)(
        get_cr(crs, ns, "snapshots", "snap-cr-d")), what="the Snapshot CR with the attach error")
    assert "Waiting for the volume to be attached" in waiting["status"]["error"]
    assert waiting["status"]["readyToUse"] is False and waiting["metadata"]["labels"] == {"longhornvolume": "vol-snapcr"}
    ready = wait_for(lambda: (lambda o: o if o and o["status"]["readyToUse"] else None)(
        get_cr(crs, ns, "snapshots", "snap-cr-d")), what="the Snapshot CR ready")
    assert "error" not in ready["status"]  # cleared (omitempty)


def test_unknown_backup_reaches_the_backup_cr(clh, crs, cr_emulator):
    ns = cr_emulator.namespace
    clh.post("/sandbox/seed", {"volumes": [{"name": "vol-unk", "backups": [{"name": "backup-00000000000unk1",
                                                                           "state": "InProgress"}]}]})
    clh.post("/sandbox/backups/backup-00000000000unk1", {"state": "Unknown", "error": "lost"})
    cr = wait_for(lambda: (lambda o: o if o and o["status"]["state"] == "Unknown" else None)(
        get_cr(crs, ns, "backups", "backup-00000000000unk1")), what="Unknown in the CR")
    assert cr["status"]["error"] == "lost" and cr["status"]["lastSyncedAt"]


def test_a_resync_cut_short_by_the_api_server_is_done_again(tmp_path):
    """The comparison of every CR with the store, failing part-way (the API server timed out),
    is retried on the next pass instead of leaving the mirror idle with half its picture."""
    import threading

    from sandbox.longhorn.mirror import CrMirror

    mirror = CrMirror(emu=None, kubeconfig=tmp_path / "unused")
    attempts, done = [], threading.Event()

    def resync():
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("cannot list backups: 504 timeout")
        done.set()

    mirror._register = lambda: None
    mirror._full_resync = resync
    mirror._mark_live = lambda: None
    mirror._flush = lambda: False
    mirror.start()
    try:
        assert done.wait(10), "the resync was not tried again"
    finally:
        mirror.stop()
    assert len(attempts) == 2 and not mirror.status()["resyncPending"]
