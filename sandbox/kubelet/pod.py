"""Runs one pod on the sandbox node and reports its status, as a kubelet would.

The pod waits (Pending, ContainerCreating or CreateContainerConfigError) until
its volumes and environment resolve, retrying every RETRY seconds; then its
init containers run one after another and its containers together. Each state
change is patched into the pod's /status, so the real Job controller sees the
pod run, succeed or fail. restartPolicy OnFailure and Always restart a
container in place (restartCount, lastState, back-off 0 s, 10 s, 20 s ... 5 min).
"""

from __future__ import annotations

import logging
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from .api import API_ERRORS, Api, ApiError, now
from .logs import LogStore
from .process import ContainerProcess, bwrap_argv
from .spec import POD_IP, PodNotReady, PodUnrunnable, command_line, container_env
from .volumes import Volume, container_mounts, pod_volumes

log = logging.getLogger(__name__)

RETRY = 2.0
MAX_BACKOFF = 300
MESSAGE_LIMIT = 4096


@dataclass(frozen=True)
class Context:
    api: Api
    node: str
    store: LogStore
    longhorn_dir: Path


class PodWorker:
    def __init__(self, ctx: Context, pod: dict):
        self.ctx = ctx
        self.pod = pod
        self.spec = pod["spec"]
        self.name = f"{pod['metadata']['namespace']}/{pod['metadata']['name']}"
        self.dir = ctx.store.pod_dir(pod)
        self.finished = threading.Event()
        self._lock = threading.Lock()          # the fields below
        self._patch_lock = threading.Lock()    # one status patch at a time, newest last
        self._stopping = threading.Event()
        self._stop_reason: tuple[str, str] | None = None
        self._deleted = False                  # deletion requested: confirm it when done
        self._gone = False                     # the pod no longer exists
        self._shutdown = False                 # the stand-in is stopping
        self._finishing = False                # past the point where a deletion is noticed
        self._ran = False                      # some container process was started
        self._last_terminated: dict[str, dict] = {}
        self._processes: dict[str, ContainerProcess] = {}
        self._phase = "Pending"
        self._start_time = now()
        self._conditions: dict[str, tuple[str, str]] = {}
        init, main = self.spec.get("initContainers") or [], self.spec["containers"]
        self._statuses = {c["name"]: self._initial_status(c, "PodInitializing" if init else "ContainerCreating")
                          for c in main}
        self._init_statuses = {c["name"]: self._initial_status(c, "PodInitializing") for c in init}
        self._thread = threading.Thread(target=self._run, name=f"pod {self.name}", daemon=True)

    # Called by the pod sync loop ----------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def delete(self, grace: float, gone: bool = False) -> bool:
        """The pod is being deleted (or is gone): stop it, then confirm the deletion and clean up.

        False if the worker has already finished: the caller must do that itself.
        """
        with self._lock:
            if self._finishing:
                return False
            self._deleted = True
            self._gone = self._gone or gone
        self.stop(None, None, grace)
        return True

    def shutdown(self, grace: float) -> None:
        """The stand-in stops: kill the pod; a pod that never ran stays Pending for the next run."""
        with self._lock:
            self._shutdown = True
        self.stop("NodeShutdown", "the sandbox kubelet stopped while the pod ran", grace)

    def stop(self, reason: str | None, message: str | None, grace: float) -> None:
        """Kill the pod's processes; the pod ends Failed with `reason` if given."""
        with self._lock:
            if reason and not self._stop_reason:
                self._stop_reason = (reason, message or reason)
            self._stopping.set()
            processes = list(self._processes.values())
        for proc in processes:
            proc.kill(grace)

    # The pod's life ------------------------------------------------------------
    def _run(self) -> None:
        deadline = self._arm_deadline()
        try:
            volumes = self._prepare()
            if volumes is not None and self._run_init(volumes):
                self._run_main(volumes)
        except Exception as exc:  # noqa: BLE001 - one bad pod must not stop the stand-in
            log.exception("pod %s: unexpected error", self.name)
            self.stop("SandboxKubeletError", f"the sandbox kubelet could not run the pod: {exc}", 0)
        finally:
            if deadline:
                deadline.cancel()
            self._finish()

    def _arm_deadline(self) -> threading.Timer | None:
        seconds = self.spec.get("activeDeadlineSeconds")
        if seconds is None:
            return None
        grace = self.spec.get("terminationGracePeriodSeconds", 30)
        timer = threading.Timer(seconds, self.stop, ("DeadlineExceeded",
                                                     "Pod was active on the node longer than the specified deadline",
                                                     grace))
        timer.daemon = True
        timer.start()
        return timer

    def _prepare(self) -> dict[str, Volume] | None:
        """The pod's volumes once they all resolve; None if the pod stopped first."""
        while not self._stopping.is_set():
            try:
                return pod_volumes(self.ctx.api, self.pod, self.dir, self.ctx.longhorn_dir)
            except PodNotReady as exc:
                self._wait_all(exc.reason, exc.message)
            except PodUnrunnable as exc:
                self._wait_all(exc.reason, exc.message)
                self.stop(exc.reason, exc.message, 0)
            except API_ERRORS as exc:
                self._wait_all("ContainerCreating", f"cannot read the pod's volumes: {_reason(exc)}")
            self._stopping.wait(RETRY)
        return None

    def _run_init(self, volumes: dict[str, Volume]) -> bool:
        for container in self.spec.get("initContainers") or []:
            if self._run_container(container, volumes, init=True) != 0:
                return False
        with self._lock:
            self._set_condition("Initialized", "True")
        return True

    def _run_main(self, volumes: dict[str, Volume]) -> None:
        threads = [threading.Thread(target=self._run_container, args=(c, volumes, False),
                                    name=f"{self.name}/{c['name']}", daemon=True)
                   for c in self.spec["containers"]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def _run_container(self, container: dict, volumes: dict[str, Volume], init: bool) -> int | None:
        """Run a container, restarting it as restartPolicy says; its last exit code (None: never ran)."""
        restarts = 0
        while True:
            code = self._run_once(container, volumes, init, restarts)
            if code is None or not self._should_restart(code, init):
                return code
            restarts += 1
            delay = 0 if restarts == 1 else min(10 * 2 ** (restarts - 2), MAX_BACKOFF)
            if delay:
                message = f"back-off {delay}s restarting failed container={container['name']} pod={self.name}"
                self._update(container["name"], init, state={"waiting": {"reason": "CrashLoopBackOff",
                                                                          "message": message}})
            if self._stopping.wait(delay):
                return code

    def _should_restart(self, code: int, init: bool) -> bool:
        policy = self.spec.get("restartPolicy") or "Always"
        if self._stopping.is_set() or policy == "Never":
            return False
        return code != 0 or (policy == "Always" and not init)

    def _run_once(self, container: dict, volumes: dict[str, Volume], init: bool, restarts: int) -> int | None:
        name = container["name"]
        while True:
            if self._stopping.is_set():
                return None
            try:
                env = container_env(self.ctx.api, self.pod, container)
                argv = command_line(container, env)
                mounts = container_mounts(container, volumes, env)
                break
            except PodNotReady as exc:
                self._update(name, init, state={"waiting": {"reason": exc.reason, "message": exc.message}})
            except API_ERRORS as exc:
                self._update(name, init, state={"waiting": {"reason": "CreateContainerConfigError",
                                                            "message": f"cannot read the API: {_reason(exc)}"}})
            except PodUnrunnable as exc:
                stamp = now()
                self._update(name, init, state={"terminated": {
                    "exitCode": 128, "reason": exc.reason, "message": exc.message,
                    "startedAt": stamp, "finishedAt": stamp}})
                self.stop(exc.reason, exc.message, 0)
                return 128
            self._stopping.wait(RETRY)

        log_path = self.ctx.store.path(self.pod, name)
        if restarts and log_path.exists():
            log_path.replace(self.ctx.store.path(self.pod, name, previous=True))
        termination = self.dir / "termination" / name
        termination.parent.mkdir(parents=True, exist_ok=True)
        termination.write_bytes(b"")
        hostname = self.spec.get("hostname") or self.pod["metadata"]["name"]
        argv = bwrap_argv(argv, mounts, hostname, container.get("workingDir") or "/", termination,
                          container.get("terminationMessagePath") or "/dev/termination-log")
        with self._lock:
            if self._stopping.is_set():
                return None
            proc = ContainerProcess(argv, env, log_path)
            self._processes[name] = proc
            self._ran = True
            if not init:
                self._phase = "Running"
        log.info("pod %s: container %s started (pid %d, restarts %d)", self.name, name, proc.pid, restarts)
        started = now()
        container_id = f"sandbox://{proc.pid}"
        last = {"lastState": {"terminated": self._last_terminated[name]}} if restarts else {}
        self._update(name, init, state={"running": {"startedAt": started}}, containerID=container_id,
                     started=True, ready=not init, restartCount=restarts, **last)
        code = proc.wait()
        with self._lock:
            self._processes.pop(name, None)
        try:
            message = termination.read_text(errors="replace")[:MESSAGE_LIMIT].strip()
        except OSError:  # the pod is gone and its directory with it
            message = ""
        if not message and code != 0:
            message = proc.output_tail()
        terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error",
                      "startedAt": started, "finishedAt": now(), "containerID": container_id}
        if message:
            terminated["message"] = message
        log.info("pod %s: container %s exited %d", self.name, name, code)
        self._last_terminated[name] = terminated
        self._update(name, init, state={"terminated": terminated}, started=False, ready=False)
        return code

    def _finish(self) -> None:
        with self._lock:
            codes = [s["state"].get("terminated", {}).get("exitCode") for s in self._statuses.values()]
            if self._stop_reason or not all(code == 0 for code in codes):
                self._phase = "Failed"
            else:
                self._phase = "Succeeded"
            self._set_condition("Ready", "False")
            self._set_condition("ContainersReady", "False")
            deleted, gone = self._deleted, self._gone
            self._finishing = True
            outcome = f"{self._phase} ({self._stop_reason[0]})" if self._stop_reason else self._phase
            # A pod that never ran and is being deleted, or waits for the next run, keeps its status.
            report = self._ran or not (deleted or self._shutdown)
        try:
            if report:
                log.info("pod %s: %s", self.name, outcome)
                self._patch(final=True)
            shutil.rmtree(self.dir / ("" if gone else "volumes"), ignore_errors=True)
            if deleted and not gone:
                self.ctx.api.delete_pod_now(self.pod)
                log.info("pod %s: termination confirmed (deleted with grace 0)", self.name)
        except API_ERRORS as exc:  # the sync loop confirms the deletion on the pod's next event
            log.warning("pod %s: could not confirm deletion: %s", self.name, _reason(exc))
        finally:
            self.finished.set()

    # Status ------------------------------------------------------------------
    @staticmethod
    def _initial_status(container: dict, reason: str) -> dict:
        return {"name": container["name"], "image": container.get("image", ""), "imageID": "",
                "ready": False, "started": False, "restartCount": 0, "state": {"waiting": {"reason": reason}}}

    def _wait_all(self, reason: str, message: str) -> None:
        """Every container waits for the same reason (volumes not ready, say)."""
        state = {"waiting": {"reason": reason, "message": message}}
        changed = [self._update(name, name in self._init_statuses, state=state, patch=False)
                   for name in [*self._init_statuses, *self._statuses]]
        if any(changed):
            self._patch()

    def _update(self, name: str, init: bool, *, patch: bool = True, **fields) -> bool:
        """Change a container's status; patch the pod if anything changed."""
        with self._lock:
            status = (self._init_statuses if init else self._statuses)[name]
            if status == {**status, **fields}:
                return False  # nothing new (a retry loop reporting the same wait)
            status.update(fields)
            if "ready" in fields and not init:
                ready = all(s["ready"] for s in self._statuses.values())
                for kind in ("ContainersReady", "Ready"):
                    self._set_condition(kind, "True" if ready else "False")
        if patch:
            self._patch()
        return True

    def _set_condition(self, kind: str, value: str) -> None:
        """Set a pod condition (caller holds the lock); its transition time moves only on change."""
        if self._conditions.get(kind, ("",))[0] != value:
            self._conditions[kind] = (value, now())

    def _status_body(self) -> dict:
        conditions = {"PodScheduled": ("True", self._start_time),
                      "Initialized": ("False" if self.spec.get("initContainers") else "True", self._start_time),
                      "ContainersReady": ("False", self._start_time), "Ready": ("False", self._start_time),
                      **self._conditions}
        body = {
            "phase": self._phase, "hostIP": POD_IP, "podIP": POD_IP, "podIPs": [{"ip": POD_IP}],
            "startTime": self._start_time,
            "conditions": [{"type": kind, "status": value, "lastProbeTime": None, "lastTransitionTime": stamp}
                           for kind, (value, stamp) in conditions.items()],
            "containerStatuses": [dict(s) for s in self._statuses.values()],
        }
        if self._init_statuses:
            body["initContainerStatuses"] = [dict(s) for s in self._init_statuses.values()]
        if self._phase == "Failed" and self._stop_reason:
            body["reason"], body["message"] = self._stop_reason
        return body

    def _patch(self, final: bool = False) -> None:
        with self._patch_lock:
            for attempt in range(5 if final else 1):
                with self._lock:
                    if self._gone:
                        return
                    body = self._status_body()
                try:
                    self.ctx.api.patch_pod_status(self.pod, body)
                    return
                except ApiError as exc:
                    if exc.status in (404, 409):  # deleted, or replaced by a new pod of that name
                        with self._lock:
                            self._gone = True
                        return
                    log.warning("pod %s: status patch failed: %s %s", self.name, exc.status, exc.reason)
                except Exception as exc:  # noqa: BLE001 - the API may be restarting
                    log.warning("pod %s: status patch failed: %s", self.name, exc)
                time.sleep(1 + attempt)


def _reason(exc: Exception) -> str:
    return getattr(exc, "reason", None) or str(exc)
