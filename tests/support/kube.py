"""The sandbox's Kubernetes API as tests read it, to check what Soteria did (or did not) create."""

from __future__ import annotations

from sandbox.config import SandboxConfig


def kube(cfg: SandboxConfig):
    """A CoreV1Api on the sandbox's kubeconfig."""
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoreV1Api(api)


def pvc_exists(kube, namespace: str, name: str) -> bool:
    return any(p.metadata.name == name for p in kube.list_namespaced_persistent_volume_claim(namespace).items)


def apps(cfg: SandboxConfig):
    """An AppsV1Api on the sandbox's kubeconfig (Deployments and StatefulSets a test runs)."""
    from kubernetes import client, config

    return client.AppsV1Api(config.new_client_from_config(config_file=str(cfg.kubeconfig)))


def pod_template(name: str, volumes: list[dict], mounts: list[dict]) -> dict:
    """A pod template the kubelet stand-in runs: a shell that sleeps, mounting `volumes`, and
    that stops at once when deleted (a shell as PID 1 ignores SIGTERM)."""
    return {"metadata": {"labels": {"app": name}},
            "spec": {"terminationGracePeriodSeconds": 1, "volumes": volumes,
                     "containers": [{"name": "app", "image": "busybox", "command": ["sh", "-c", "sleep 3600"],
                                     "volumeMounts": mounts}]}}


def workload_settled(cfg: SandboxConfig, namespace: str, kind: str, name: str, replicas: int) -> bool:
    """Whether a Deployment or StatefulSet runs `replicas` up-to-date, ready pods."""
    api = apps(cfg)
    read = api.read_namespaced_deployment if kind == "Deployment" else api.read_namespaced_stateful_set
    obj = read(name, namespace)
    status = obj.status
    return (status.observed_generation == obj.metadata.generation and (status.replicas or 0) == replicas
            and (status.updated_replicas or 0) == replicas and (status.ready_replicas or 0) == replicas)


def forget_policy_lease(cfg: SandboxConfig) -> None:
    """Delete the policy evaluator's Lease, so the next worker to evaluate leads whichever
    worker of an earlier test held it."""
    from kubernetes import client, config
    from kubernetes.client.exceptions import ApiException

    api = client.CoordinationV1Api(config.new_client_from_config(config_file=str(cfg.kubeconfig)))
    try:
        api.delete_namespaced_lease("soteria-policy-evaluator", "soteria")
    except ApiException as exc:
        if exc.status != 404:
            raise
