"""The kubelet stand-in, driven through the real apiserver, Job controller and garbage collector."""

from __future__ import annotations

import base64
import os
from datetime import datetime, timezone

from kubernetes.client.exceptions import ApiException

from sandbox.config import NODE_NAME
from tests.support.jobs import claim_volume, job_body, job_log, job_pods, run_job, tree_hashes
from tests.support.polling import wait_for
from tests.support.processes import processes_mentioning


def _terminated(pod):
    return pod.status.container_statuses[0].state.terminated


def _waiting(core, namespace, job):
    """The waiting state of the Job's first pod's container, once reported."""
    pods = job_pods(core, namespace, job)
    statuses = pods and pods[0].status.container_statuses
    return statuses and statuses[0].state.waiting


def _secret(core, namespace, name, data: dict[str, str]) -> None:
    core.create_namespaced_secret(namespace, {
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": name},
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}})


def test_node_is_registered_ready_with_its_kubelet_endpoint(core_v1, kube_client, kubelet_sandbox):
    from kubernetes import client

    node = core_v1.read_node(NODE_NAME)
    ready = next(c for c in node.status.conditions if c.type == "Ready")
    assert ready.status == "True"
    assert [(a.type, a.address) for a in node.status.addresses if a.type == "InternalIP"] == [("InternalIP",
                                                                                            "127.0.0.1")]
    assert node.status.daemon_endpoints.kubelet_endpoint.port == kubelet_sandbox.port("kubelet")
    assert node.status.allocatable["pods"] == "110"
    # The NodeTaint admission plugin taints a new node not-ready; the real node lifecycle
    # controller lifts that once it sees the node Ready, and never adds another.
    wait_for(lambda: not core_v1.read_node(NODE_NAME).spec.taints, what="the not-ready taint to be lifted")
    leases = client.CoordinationV1Api(kube_client)
    lease = leases.read_namespaced_lease(NODE_NAME, "kube-node-lease")
    assert lease.spec.holder_identity == NODE_NAME
    assert (datetime.now(timezone.utc) - lease.spec.renew_time).total_seconds() < 30
    wait_for(lambda: leases.read_namespaced_lease(NODE_NAME, "kube-node-lease").spec.renew_time
             > lease.spec.renew_time, timeout=20, what="the node's lease to be renewed")


def test_job_whose_pod_exits_zero_completes(core_v1, batch_v1, scratch_ns):
    body = job_body("ok", command=["sh", "-c", "echo all good"])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    [pod] = job_pods(core_v1, scratch_ns, "ok")
    assert pod.spec.node_name == NODE_NAME
    assert pod.status.phase == "Succeeded"
    terminated = _terminated(pod)
    assert (terminated.exit_code, terminated.reason) == (0, "Completed")
    assert terminated.started_at <= terminated.finished_at


def test_failing_pod_reports_exit_code_and_job_fails_after_backoff_limit(core_v1, batch_v1, scratch_ns):
    body = job_body("bad", command=["sh", "-c", "echo about to fail; echo details >&2; exit 3"], backoff_limit=1)
    assert run_job(batch_v1, scratch_ns, body, timeout=90) == "Failed"
    pods = job_pods(core_v1, scratch_ns, "bad")
    assert len(pods) == 2  # the Job controller retried once, and the stand-in ran the retry too
    for pod in pods:
        assert pod.status.phase == "Failed"
        terminated = _terminated(pod)
        assert (terminated.exit_code, terminated.reason) == (3, "Error")
        assert terminated.message == "about to fail\ndetails\n"
    job = batch_v1.read_namespaced_job("bad", scratch_ns)
    assert [c.reason for c in job.status.conditions if c.type == "Failed"] == ["BackoffLimitExceeded"]


def test_on_failure_restarts_the_container_in_place(core_v1, batch_v1, scratch_ns, tmp_path, static_pvc):
    static_pvc("state", host_path=tmp_path / "state")
    script = "echo attempt; if [ -e /state/tried ]; then exit 0; fi; touch /state/tried; exit 1"
    body = job_body("flaky", command=["sh", "-c", script], restart_policy="OnFailure", backoff_limit=3,
                    mounts=[{"name": "state", "mountPath": "/state"}], volumes=[claim_volume("state", "state")])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    [pod] = job_pods(core_v1, scratch_ns, "flaky")
    status = pod.status.container_statuses[0]
    assert status.restart_count == 1
    assert status.last_state.terminated.exit_code == 1
    assert core_v1.read_namespaced_pod_log(pod.metadata.name, scratch_ns, previous=True) == "attempt\n"


def test_env_and_env_from_a_secret_reach_the_process(core_v1, batch_v1, scratch_ns):
    _secret(core_v1, scratch_ns, "creds", {"AWS_ACCESS_KEY_ID": "key-id", "RESTIC_PASSWORD": "s3cret pass"})
    core_v1.create_namespaced_config_map(scratch_ns, {"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": "settings"}, "data": {"mode": "fast"}})
    env = [
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "RESTIC_PASSWORD"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "mode"}}},
        {"name": "POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "GREETING", "value": "mode=$(MODE)"},
        {"name": "ABSENT", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "x", "optional": True}}},
    ]
    env_from = [{"secretRef": {"name": "creds"}}, {"prefix": "CM_", "configMapRef": {"name": "settings"}}]
    script = ('echo "$AWS_ACCESS_KEY_ID|$RESTIC_PASSWORD|$PASSWORD|$MODE|$CM_mode|$POD_NAMESPACE|$GREETING'
              '|${ABSENT:-unset}"')
    body = job_body("env", command=["sh", "-c", script], env=env, env_from=env_from)
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    assert job_log(core_v1, scratch_ns, "env") == (
        f"key-id|s3cret pass|s3cret pass|fast|fast|{scratch_ns}|mode=fast|unset\n")


def test_missing_secret_keeps_the_pod_waiting_until_it_exists(core_v1, batch_v1, scratch_ns):
    body = job_body("waits", command=["sh", "-c", 'echo "$TOKEN"'], env_from=[{"secretRef": {"name": "later"}}])
    batch_v1.create_namespaced_job(scratch_ns, body)

    waiting = wait_for(lambda: _waiting(core_v1, scratch_ns, "waits"), what="the pod to wait for its secret")
    assert (waiting.reason, waiting.message) == ("CreateContainerConfigError", 'secret "later" not found')
    assert job_pods(core_v1, scratch_ns, "waits")[0].status.phase == "Pending"
    _secret(core_v1, scratch_ns, "later", {"TOKEN": "arrived"})
    wait_for(lambda: (batch_v1.read_namespaced_job("waits", scratch_ns).status.succeeded or 0) == 1,
             what="the job to complete once the secret exists")
    assert job_log(core_v1, scratch_ns, "waits") == "arrived\n"


def test_longhorn_pvc_appears_at_its_mount_path(core_v1, batch_v1, scratch_ns, kubelet_sandbox, static_pvc):
    handle = f"pvc-{scratch_ns}-data"
    volume_dir = kubelet_sandbox.longhorn_volumes_dir / handle
    (volume_dir / "sub").mkdir(parents=True)
    (volume_dir / "sub" / "in.txt").write_text("from the volume\n")
    static_pvc("data", longhorn=handle)
    body = job_body("mount", command=["sh", "-c", "cat /mnt/data/sub/in.txt; echo written > /mnt/data/out.txt"],
                    mounts=[{"name": "data", "mountPath": "/mnt/data"}], volumes=[claim_volume("data", "data")])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    assert job_log(core_v1, scratch_ns, "mount") == "from the volume\n"
    assert (volume_dir / "out.txt").read_text() == "written\n"
    assert not os.path.exists("/mnt/data")  # the mount point lived only in the private namespace


def test_read_only_mount_is_enforced(core_v1, batch_v1, scratch_ns, kubelet_sandbox, static_pvc):
    handle = f"pvc-{scratch_ns}-ro"
    static_pvc("ro", longhorn=handle)
    body = job_body("ro", command=["sh", "-c", "ls /data && touch /data/x"],
                    mounts=[{"name": "data", "mountPath": "/data", "readOnly": True}],
                    volumes=[claim_volume("data", "ro")])
    assert run_job(batch_v1, scratch_ns, body) == "Failed"
    terminated = _terminated(job_pods(core_v1, scratch_ns, "ro")[0])
    assert terminated.exit_code == 1
    assert "Read-only file system" in terminated.message
    assert list((kubelet_sandbox.longhorn_volumes_dir / handle).iterdir()) == []


def test_host_path_pv_and_sub_paths_are_mounted(core_v1, batch_v1, scratch_ns, tmp_path, static_pvc):
    (tmp_path / "disk" / "app").mkdir(parents=True)
    (tmp_path / "disk" / "app" / "config").write_text("v=1\n")
    static_pvc("local", host_path=tmp_path / "disk")
    mounts = [{"name": "disk", "mountPath": "/whole"}, {"name": "disk", "mountPath": "/app", "subPath": "app"},
              {"name": "disk", "mountPath": "/mine", "subPathExpr": "by-pod/$(SLOT)"}]
    script = "cat /app/config; echo new > /whole/app/new; echo mine > /mine/file"
    body = job_body("hostpath", command=["sh", "-c", script], env=[{"name": "SLOT", "value": "a"}],
                    mounts=mounts, volumes=[claim_volume("disk", "local")])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    assert job_log(core_v1, scratch_ns, "hostpath") == "v=1\n"
    assert tree_hashes(tmp_path / "disk").keys() == {"app/config", "app/new", "by-pod/a/file"}


def test_init_containers_secret_volumes_and_empty_dir(core_v1, batch_v1, scratch_ns):
    _secret(core_v1, scratch_ns, "files", {"token": "t0k3n"})
    mounts = [{"name": "scratch", "mountPath": "/work"}, {"name": "secret", "mountPath": "/secret"}]
    prepare = {"name": "prepare", "image": "busybox", "command": ["sh", "-c", "cp /secret/token /work/copied"],
               "volumeMounts": mounts}
    volumes = [{"name": "scratch", "emptyDir": {}}, {"name": "secret", "secret": {"secretName": "files"}}]
    body = job_body("init", command=["sh", "-c", "cat /work/copied; echo; ls /secret"], mounts=mounts,
                    volumes=volumes, pod_spec={"initContainers": [prepare]})
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    assert job_log(core_v1, scratch_ns, "init") == "t0k3n\ntoken\n"
    [pod] = job_pods(core_v1, scratch_ns, "init")
    assert pod.status.init_container_statuses[0].state.terminated.exit_code == 0


def test_logs_are_served_through_the_apiserver(core_v1, batch_v1, scratch_ns):
    body = job_body("talk", command=["sh", "-c", "for i in 1 2 3 4 5; do echo line $i; done"])
    assert run_job(batch_v1, scratch_ns, body) == "Complete"
    pod = job_pods(core_v1, scratch_ns, "talk")[0].metadata.name
    assert core_v1.read_namespaced_pod_log(pod, scratch_ns) == "".join(f"line {i}\n" for i in range(1, 6))
    assert core_v1.read_namespaced_pod_log(pod, scratch_ns, container="main", tail_lines=2) == "line 4\nline 5\n"
    assert core_v1.read_namespaced_pod_log(pod, scratch_ns, limit_bytes=6) == "line 1"
    stamped = core_v1.read_namespaced_pod_log(pod, scratch_ns, timestamps=True, tail_lines=1)
    stamp, text = stamped.split(" ", 1)
    assert text == "line 5\n" and datetime.fromisoformat(stamp[:26] + "+00:00")


def test_deleting_a_job_kills_its_running_pod(core_v1, batch_v1, scratch_ns):
    body = job_body("sleeper", command=["sh", "-c", "echo started; exec sleep 300"])
    batch_v1.create_namespaced_job(scratch_ns, body)
    pod = wait_for(lambda: _running(core_v1, scratch_ns, "sleeper"), what="the sleeper to start")
    wait_for(lambda: job_log(core_v1, scratch_ns, "sleeper") == "started\n", what="the sleeper's first output")
    uid = pod.metadata.uid  # the pod's directory, named in its sandbox's command line, holds the uid
    assert processes_mentioning(uid), "the pod's process should be running"
    batch_v1.delete_namespaced_job("sleeper", scratch_ns, propagation_policy="Background")

    def pod_gone():
        try:
            core_v1.read_namespaced_pod(pod.metadata.name, scratch_ns)
        except ApiException as exc:
            return exc.status == 404
        return False
    wait_for(pod_gone, what="the garbage collector and the stand-in to delete the pod")
    wait_for(lambda: not processes_mentioning(uid), timeout=10, what="the pod's processes to die")


def _running(core, namespace, job):
    pods = job_pods(core, namespace, job)
    return pods and pods[0].status.phase == "Running" and pods[0]


def test_active_deadline_kills_the_pod(core_v1, batch_v1, scratch_ns):
    body = job_body("late", command=["sh", "-c", "sleep 300"], pod_spec={"activeDeadlineSeconds": 2})
    assert run_job(batch_v1, scratch_ns, body) == "Failed"
    [pod] = job_pods(core_v1, scratch_ns, "late")
    assert (pod.status.phase, pod.status.reason) == ("Failed", "DeadlineExceeded")
    assert _terminated(pod).exit_code == 143  # SIGTERM, as a kubelet stops a pod past its deadline


def test_unplayable_image_fails_the_pod_with_a_reason(core_v1, batch_v1, scratch_ns):
    body = job_body("nginx", image="nginx:1.25", args=["-g", "daemon off;"])
    assert run_job(batch_v1, scratch_ns, body) == "Failed"
    [pod] = job_pods(core_v1, scratch_ns, "nginx")
    assert pod.status.reason == "UnplayableImage"
    assert "nginx:1.25" in pod.status.message
    assert _terminated(pod).reason == "UnplayableImage"


def test_unbound_claim_keeps_the_pod_pending(core_v1, batch_v1, scratch_ns):
    core_v1.create_namespaced_persistent_volume_claim(scratch_ns, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "nowhere"},
        "spec": {"accessModes": ["ReadWriteOnce"], "storageClassName": "no-such-class",
                 "resources": {"requests": {"storage": "1Gi"}}}})
    body = job_body("pending", command=["true"], mounts=[{"name": "v", "mountPath": "/v"}],
                    volumes=[claim_volume("v", "nowhere")])
    batch_v1.create_namespaced_job(scratch_ns, body)

    state = wait_for(lambda: _waiting(core_v1, scratch_ns, "pending"), what="the pod to wait for its claim")
    assert state.reason == "ContainerCreating"
    assert state.message == 'persistentvolumeclaim "nowhere" is not bound'
    assert job_pods(core_v1, scratch_ns, "pending")[0].status.phase == "Pending"


def test_node_selector_is_honoured_loosely(core_v1, batch_v1, scratch_ns):
    elsewhere = job_body("elsewhere", command=["true"], pod_spec={"nodeSelector": {"kubernetes.io/hostname": "other"}})
    batch_v1.create_namespaced_job(scratch_ns, elsewhere)
    wait_for(lambda: job_pods(core_v1, scratch_ns, "elsewhere"), what="the Job controller to create the pod")
    unknown_key = job_body("ssd", command=["true"], pod_spec={"nodeSelector": {"disktype": "ssd",
                                                                              "kubernetes.io/os": "linux"}})
    # Pods are handled in order, so once the second has run the first was seen and left alone.
    assert run_job(batch_v1, scratch_ns, unknown_key) == "Complete"
    [pod] = job_pods(core_v1, scratch_ns, "elsewhere")
    assert pod.spec.node_name is None
    assert pod.status.phase == "Pending"
