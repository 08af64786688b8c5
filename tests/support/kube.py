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
