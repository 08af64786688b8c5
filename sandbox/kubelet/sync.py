"""Plays scheduler and kubelet for every pod in the cluster.

One list-then-watch loop over all pods (relisting every RESYNC seconds, when
the server ends the watch, and whenever it fails): pending unscheduled pods are bound to the sandbox node through the
pods/binding subresource, as the scheduler does; the node's pending pods are
run by a PodWorker each; pods being deleted are stopped and their deletion
confirmed with a grace-0 delete, as a kubelet does.

Scheduling is loose: a nodeSelector key the node has with another value (say
kubernetes.io/hostname=other) keeps the pod unscheduled, as it would on a real
cluster; keys the node lacks are ignored with a warning, because the sandbox
has one node. Affinity, taints and tolerations, and resources are ignored.
Pods for another schedulerName are left alone.
"""

from __future__ import annotations

import logging
import shutil
import threading

from .api import API_ERRORS, ApiError, now
from .pod import Context, PodWorker

log = logging.getLogger(__name__)

DEFAULT_GRACE = 30
RESYNC = 120


class PodSync:
    def __init__(self, ctx: Context, node_labels: dict[str, str]):
        self.ctx = ctx
        self.node_labels = node_labels
        self.workers: dict[str, PodWorker] = {}   # pod uid -> worker, until the pod is gone
        self._warned: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="pod-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def shutdown(self, grace: float) -> None:
        """Stop watching and kill every running pod; wait up to `grace` + 5 s for them to report."""
        self._stop.set()
        workers = list(self.workers.values())
        for worker in workers:
            worker.shutdown(grace)
        for worker in workers:
            worker.finished.wait(grace + 5)

    # The list-watch loop ------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                pods, version = self.ctx.api.list_pods()
                self._resync(pods)
                for kind, pod in self.ctx.api.watch_pods(version, timeout=RESYNC):
                    if kind != "BOOKMARK":
                        self._handle(kind, pod)
                    if self._stop.is_set():
                        return
                continue  # the server ended the watch: relist, which retries anything missed
            except ApiError as exc:
                if exc.status == 410:
                    log.info("pod watch expired; relisting")
                    continue
                log.warning("pod list/watch failed: %s %s; relisting", exc.status, exc.reason)
            except API_ERRORS as exc:  # the apiserver may be restarting; keep trying
                log.warning("pod list/watch failed: %s; relisting", exc)
            except Exception:  # noqa: BLE001 - a bug; log it and carry on
                log.exception("pod list/watch failed; relisting")
            self._stop.wait(1)

    def _resync(self, pods: list[dict]) -> None:
        """Handle a full list; pods we run that are no longer listed were deleted meanwhile."""
        listed = {pod["metadata"]["uid"] for pod in pods}
        for pod in pods:
            self._handle("SYNC", pod)
        for uid in set(self.workers) - listed:
            self._handle("DELETED", self.workers[uid].pod)

    def _handle(self, kind: str, pod: dict) -> None:
        try:
            self._dispatch(kind, pod)
        except Exception:  # noqa: BLE001 - one bad pod must not stop the others
            log.exception("pod %s/%s: cannot handle %s event", pod["metadata"].get("namespace"),
                          pod["metadata"].get("name"), kind)

    def _dispatch(self, kind: str, pod: dict) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        uid = meta["uid"]
        if kind == "DELETED":
            self._forget(pod)
            return
        if not spec.get("nodeName"):
            if self._schedulable(pod):
                self._bind(pod)
            return
        if spec["nodeName"] != self.ctx.node:
            return
        worker = self.workers.get(uid)
        if meta.get("deletionTimestamp"):
            grace = meta.get("deletionGracePeriodSeconds")
            grace = spec.get("terminationGracePeriodSeconds", DEFAULT_GRACE) if grace is None else grace
            if worker is None or not worker.delete(grace):
                self.ctx.api.delete_pod_now(pod)
            return
        if worker is not None:
            return
        phase = (pod.get("status") or {}).get("phase", "Pending")
        if phase == "Running":
            self._fail_orphan(pod)
        elif phase == "Pending":
            worker = PodWorker(self.ctx, pod)
            self.workers[uid] = worker
            log.info("pod %s/%s: starting", meta["namespace"], meta["name"])
            worker.start()

    def _forget(self, pod: dict) -> None:
        worker = self.workers.pop(pod["metadata"]["uid"], None)
        if worker is None or not worker.delete(0, gone=True):
            shutil.rmtree(self.ctx.store.pod_dir(pod), ignore_errors=True)
        self._warned.discard(pod["metadata"]["uid"])

    # Scheduling -----------------------------------------------------------------
    def _schedulable(self, pod: dict) -> bool:
        meta, spec = pod["metadata"], pod["spec"]
        if meta.get("deletionTimestamp") or (pod.get("status") or {}).get("phase", "Pending") != "Pending":
            return False
        if (spec.get("schedulerName") or "default-scheduler") != "default-scheduler":
            return False
        selector = spec.get("nodeSelector") or {}
        mismatched = {k: v for k, v in selector.items() if k in self.node_labels and self.node_labels[k] != v}
        unknown = sorted(k for k in selector if k not in self.node_labels)
        if (mismatched or unknown) and meta["uid"] not in self._warned:
            self._warned.add(meta["uid"])
            if mismatched:
                log.warning("pod %s/%s: nodeSelector %s does not match node %s; leaving it unscheduled",
                            meta["namespace"], meta["name"], mismatched, self.ctx.node)
            else:
                log.warning("pod %s/%s: ignoring nodeSelector keys %s the sandbox node does not have",
                            meta["namespace"], meta["name"], unknown)
        return not mismatched

    def _bind(self, pod: dict) -> None:
        meta = pod["metadata"]
        try:
            self.ctx.api.bind(pod, self.ctx.node)
            log.info("pod %s/%s: bound to %s", meta["namespace"], meta["name"], self.ctx.node)
        except ApiError as exc:
            if exc.status not in (404, 409):  # gone, or bound meanwhile
                raise

    def _fail_orphan(self, pod: dict) -> None:
        """A Running pod this process never started: its process died with an earlier stand-in."""
        message = "the sandbox kubelet restarted; the pod's processes are gone"
        statuses = []
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            running = status.get("state", {}).get("running")
            if running:
                status = {**status, "ready": False, "started": False, "state": {"terminated": {
                    "exitCode": 137, "reason": "Error", "message": message,
                    "startedAt": running.get("startedAt"), "finishedAt": now()}}}
            statuses.append(status)
        self.ctx.api.patch_pod_status(pod, {"phase": "Failed", "reason": "SandboxKubeletRestarted",
                                            "message": message, "containerStatuses": statuses})
        log.warning("pod %s/%s: marked Failed (%s)", pod["metadata"]["namespace"], pod["metadata"]["name"], message)
