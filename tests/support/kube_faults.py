"""Upstream faults in the reliability tests: Soteria's Kubernetes client pointed at the
sandbox's apiserver through a fault proxy (sandbox/fault_proxy.py), and what Soteria left
behind after a failure, counted by the labels it puts on what it creates."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

from sandbox.config import SandboxConfig
from sandbox.fault_proxy import KubeFaultProxy

from .kube import kube
from .polling import wait_for

MANAGED = "app.kubernetes.io/managed-by=soteria"
# Soteria's Jobs and their Secret copies carry MANAGED; the policy Secret does too, but it is
# no object a backup or restore creates.
JOB_OBJECTS = f"{MANAGED},soteria.io/purpose!=policies"
RESTORED = "soteria.io/restored-from"


def through_proxy(settings, proxy: KubeFaultProxy, directory: Path) -> None:
    """Soteria's settings: the Kubernetes API through `proxy` (the client is built again)."""
    from soteria_site.core import kubernetes

    settings.KUBECONFIG = str(proxy.kubeconfig(directory / "kubeconfig-through-faults"))
    kubernetes.reset()


def batch(cfg: SandboxConfig):
    from kubernetes import client, config

    return client.BatchV1Api(config.new_client_from_config(config_file=str(cfg.kubeconfig)))


def longhorn_volumes(cfg: SandboxConfig) -> set[str]:
    """The Longhorn emulator's volumes, asked directly (never through a fault)."""
    with urllib.request.urlopen(f"{cfg.longhorn_url}/v1/volumes", timeout=30) as response:
        return {v["name"] for v in json.loads(response.read())["data"]}


def soteria_objects(cfg: SandboxConfig) -> set[tuple[str, str]]:
    """What backups and restores create, by kind: Longhorn volumes (all of them: Longhorn
    volumes carry no labels), PVs and PVCs labelled soteria.io/restored-from, and Jobs and
    Secrets labelled app.kubernetes.io/managed-by=soteria. Read straight from the sandbox."""
    core, jobs = kube(cfg), batch(cfg)
    found = {("volume", name) for name in longhorn_volumes(cfg)}
    found |= {("pv", pv.metadata.name) for pv in core.list_persistent_volume(label_selector=RESTORED).items}
    found |= {("pvc", f"{c.metadata.namespace}/{c.metadata.name}")
              for c in core.list_persistent_volume_claim_for_all_namespaces(label_selector=RESTORED).items}
    found |= {("job", f"{j.metadata.namespace}/{j.metadata.name}")
              for j in jobs.list_job_for_all_namespaces(label_selector=JOB_OBJECTS).items}
    found |= {("secret", f"{s.metadata.namespace}/{s.metadata.name}")
              for s in core.list_secret_for_all_namespaces(label_selector=JOB_OBJECTS).items}
    return found


def assert_nothing_left(cfg: SandboxConfig, before: set[tuple[str, str]], timeout: float = 30.0,
                        allowed: Callable[[tuple[str, str]], bool] = lambda obj: False) -> None:
    """Nothing exists now that did not before (except what `allowed` accepts). First waits until
    the Longhorn emulator is handling no call (a request Soteria gave up on may still be carried
    out), then until deletions (Longhorn's, the garbage collector's) are done, up to `timeout`."""
    from sandbox import faults

    wait_for(lambda: faults.in_flight(cfg) == 0, timeout,
             "the Longhorn emulator to finish every call")
    last: set[tuple[str, str]] = set()

    def clean():
        nonlocal last
        last = {o for o in soteria_objects(cfg) - before if not allowed(o)}
        return not last

    deadline = time.monotonic() + timeout
    while not clean():
        assert time.monotonic() < deadline, f"left behind after the failure: {sorted(last)}"
        time.sleep(0.5)
