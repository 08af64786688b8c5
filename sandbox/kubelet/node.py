"""Registers the sandbox Node and keeps it Ready.

Like a kubelet, it reports the node's status (Ready with a fresh heartbeat,
addresses, the kubelet endpoint the apiserver proxies logs to, capacity) and
renews the node's Lease in kube-node-lease, both every HEARTBEAT seconds, so
the real node lifecycle controller never marks the node NotReady or taints it.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import threading

from .api import API_ERRORS, Api, now

log = logging.getLogger(__name__)

HEARTBEAT = 10
LEASE_SECONDS = 40
KUBELET_VERSION = "v1.20.2-sandbox"
ARCHES = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "ppc64le": "ppc64le", "s390x": "s390x"}


def labels(name: str) -> dict[str, str]:
    """The well-known labels a kubelet puts on its Node."""
    arch = ARCHES.get(platform.machine(), platform.machine())
    return {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": arch,
            "beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": arch}


def _capacity(state_dir: str) -> dict[str, str]:
    with open("/proc/meminfo") as meminfo:
        mem_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    disk = shutil.disk_usage(state_dir).total
    return {"cpu": str(os.cpu_count() or 1), "memory": f"{mem_kib}Ki", "pods": "110",
            "ephemeral-storage": f"{disk // 1024}Ki"}


class NodeAgent:
    def __init__(self, api: Api, name: str, port: int, state_dir: str):
        self.api = api
        self.name = name
        self.port = port
        self.capacity = _capacity(state_dir)
        self.since = now()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="node-heartbeat", daemon=True)

    def status(self) -> dict:
        heartbeat = now()

        def condition(kind: str, value: str, reason: str, message: str) -> dict:
            return {"type": kind, "status": value, "reason": reason, "message": message,
                    "lastHeartbeatTime": heartbeat, "lastTransitionTime": self.since}

        return {
            "conditions": [
                condition("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory"),
                condition("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
                condition("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID"),
                condition("Ready", "True", "KubeletReady", "sandbox kubelet stand-in is posting ready status"),
            ],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": self.name}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": self.port}},
            "capacity": self.capacity,
            "allocatable": self.capacity,
            "nodeInfo": {
                "machineID": "", "systemUUID": "", "bootID": "",
                "kernelVersion": platform.release(), "osImage": "sandbox (host)",
                "containerRuntimeVersion": "sandbox://bwrap", "kubeletVersion": KUBELET_VERSION,
                "kubeProxyVersion": KUBELET_VERSION, "operatingSystem": "linux",
                "architecture": labels(self.name)["kubernetes.io/arch"],
            },
        }

    def register(self) -> None:
        """Create the Node if missing (else refresh its labels), then report status and lease."""
        if self.api.node(self.name) is None:
            self.api.create_node({"apiVersion": "v1", "kind": "Node",
                                  "metadata": {"name": self.name, "labels": labels(self.name)},
                                  "status": self.status()})
            log.info("registered node %s", self.name)
        else:
            self.api.patch_node(self.name, {"metadata": {"labels": labels(self.name)}})
        self.heartbeat()

    def heartbeat(self) -> None:
        self.api.patch_node_status(self.name, self.status())
        self.api.renew_lease(self.name, LEASE_SECONDS)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _loop(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self.heartbeat()
            except API_ERRORS as exc:  # keep beating; the next try may work
                log.warning("node heartbeat failed: %s", exc)
            except Exception:  # noqa: BLE001 - a bug; log it and keep beating
                log.exception("node heartbeat failed")
