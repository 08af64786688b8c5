"""Soteria's own processes, for tests that need them real: the web server under gunicorn,
`manage.py` commands and the django-q2 queue worker, each with the server's environment.

Every process started here is stopped by PID (or by the process group it was started
in). Waiting is always polling with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from sandbox.config import SandboxConfig

from .polling import wait_for_passing
from .ports import free_port
from .processes import children

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class SoteriaServer:
    url: str
    data_dir: Path
    env: dict
    process: subprocess.Popen


def start_soteria(sandbox: SandboxConfig, data_dir: Path, workers: int = 2, **extra_env) -> SoteriaServer:
    """Real gunicorn (web) on a loopback port, pointed at the sandbox, with its own data dir."""
    from sandbox import cluster

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(cluster.exports(sandbox))
    # Many tests share one server and its per-identity request rates: off unless asked for.
    env.update(SOTERIA_THROTTLE_MUTATIONS="off", SOTERIA_THROTTLE_INVENTORY="off")
    env.update(SOTERIA_DATA_DIR=str(data_dir), SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port}",
               SOTERIA_WEB_WORKERS=str(workers), SOTERIA_SECURE_COOKIES="false", DJANGO_SETTINGS_MODULE="soteria_site.settings")
    env.update({k: str(v) for k, v in extra_env.items()})
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=env, check=True, timeout=120)
    subprocess.run([sys.executable, "manage.py", "createcachetable"], cwd=ROOT, env=env, check=True, timeout=120)
    log = open(data_dir / "gunicorn.log", "ab")
    process = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "soteria_site/gunicorn.conf.py",
                                "soteria_site.wsgi"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "gunicorn.log").read_text()[-3000:]) from None
            time.sleep(0.2)
    return SoteriaServer(url=url, data_dir=data_dir, env=env, process=process)


def stop_soteria(server: SoteriaServer) -> None:
    server.process.terminate()
    try:
        server.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def gunicorn_workers(server: SoteriaServer) -> set[int]:
    return children(server.process.pid)


def wait_workers(server: SoteriaServer, count: int, timeout: float = 30.0) -> set[int]:
    """Until the gunicorn master has exactly `count` live workers; their PIDs."""
    return wait_for_passing(lambda: (w := gunicorn_workers(server)) and len(w) == count and w, timeout,
                            f"{count} gunicorn workers")


def manage(server: SoteriaServer, code: str, timeout: float = 120.0) -> str:
    """`manage.py shell -c CODE` with the server's environment; returns its stdout."""
    result = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, env=server.env,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def refresh_in_shell(server: SoteriaServer) -> dict:
    """The worker's task, run once in a short-lived process (as `manage.py shell`)."""
    out = manage(server, "import json; from policies.tasks import refresh_inventory; "
                         "print(json.dumps(refresh_inventory()))")
    return json.loads(out.strip().splitlines()[-1])


class Worker:
    """Soteria's real queue worker (`manage.py qcluster`, django-q2 with the ORM broker)."""

    def __init__(self, server: SoteriaServer, hostname: str = ""):
        """`hostname`: run it as a pod of that name would (its own UTS namespace), so that two
        workers on this machine are two replicas to the Leases (leases.identity)."""
        self.server = server
        self.log_path = server.data_dir / "worker.log"
        log = open(self.log_path, "ab")
        argv = [sys.executable, "manage.py", "qcluster"]
        if hostname:
            argv = ["unshare", "--uts", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh", *argv]
        # Its own process group: django-q2 forks a sentinel, workers, a monitor and a pusher.
        self.process = subprocess.Popen(argv, cwd=ROOT, env=server.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for_passing(lambda: self.process.poll() is None and b"running" in self.log_path.read_bytes()
                 or self._died(), 60, "the qcluster to run")

    def _died(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"qcluster exited {self.process.returncode}: "
                               f"{self.log_path.read_text()[-3000:]}")
        return False

    def run(self, func: str, timeout: float = 60.0):
        """Queue `func` through django-q2 and wait until the worker has run it; returns its result."""
        out = manage(self.server, f"from django_q.tasks import async_task; print(async_task({func!r}))")
        task_id = out.strip().splitlines()[-1]
        database = self.server.data_dir / "soteria.sqlite3"

        def done():
            self._died()
            with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
                return db.execute("SELECT success FROM django_q_task WHERE id = ?", (task_id,)).fetchone()

        (success,) = wait_for_passing(done, timeout, f"task {func} ({task_id}) to be run by the worker")
        assert success, f"task {func} failed; worker log: {self.log_path.read_text()[-3000:]}"
        result = manage(self.server, f"import json; from django_q.tasks import result; "
                                     f"print(json.dumps(result({task_id!r})))")
        return json.loads(result.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever of the group is left (a forked worker stuck in a task)
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait(timeout=10)

        def group_gone():
            try:
                os.killpg(self.process.pid, 0)
            except ProcessLookupError:
                return True
            return False

        wait_for_passing(group_gone, 30, "the qcluster's processes to exit")
