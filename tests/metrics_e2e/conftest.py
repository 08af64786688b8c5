"""Helpers for the end-to-end metrics tests: real gunicorn on the session sandbox,
the real django-q2 worker, a real Prometheus server.

Every process started here is stopped at teardown, by PID (or by the process
group it was started in), and checked to be gone. Waiting is always polling
with a deadline.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SoteriaServer, start_soteria, stop_soteria

ROOT = Path(__file__).resolve().parents[2]
# A policy Secret no other test writes: the worker's scheduled policy evaluation must
# never start a backup these tests did not ask for.
POLICY_SECRET = "soteria-policies-metrics-e2e"


# --- polling -----------------------------------------------------------------
def wait_for(check: Callable[[], object], timeout: float = 30.0, what: str = "condition",
             interval: float = 0.2):
    """Poll `check` until it returns something truthy (which is returned), or fail."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError as exc:  # a check may assert to explain what it saw
            last_error = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}"
                                 + (f": {last_error}" if last_error else ""))
        time.sleep(interval)


# --- HTTP --------------------------------------------------------------------
def http(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30.0):
    """One request on a new connection (so gunicorn's workers share them). Returns
    (status, headers, body bytes); HTTP errors are answers, not exceptions."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def http_json(url: str, method: str = "GET", body: dict | None = None, timeout: float = 30.0):
    status, _, raw = http(url, method, body, timeout)
    return status, json.loads(raw or b"{}")


# --- /metrics ----------------------------------------------------------------
class Samples(dict):
    """{(sample name, frozenset of label pairs): value} of one scrape."""

    def select(self, name: str, **labels) -> dict[frozenset, float]:
        wanted = set(labels.items())
        return {key: value for (sample, key), value in self.items() if sample == name and wanted <= key}

    def one(self, name: str, **labels) -> float | None:
        """The value of the single series `name{labels...}`; None when absent."""
        found = self.select(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series: {sorted(map(sorted, found))}"
        return next(iter(found.values()), None)

    @property
    def names(self) -> set[str]:
        return {sample for sample, _ in self}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def scrape(server: SoteriaServer) -> Samples:
    status, headers, body = http(f"{server.url}/metrics")
    assert status == 200, (status, body[:500])
    assert headers.get("Content-Type", "").startswith("text/plain"), headers
    return parse(body.decode())


# --- processes -----------------------------------------------------------------
def children(pid: int) -> set[int]:
    """PIDs whose parent is `pid` (from /proc; no psutil here)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...; comm may hold spaces and parentheses.
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z" and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def gunicorn_workers(server: SoteriaServer) -> set[int]:
    return children(server.process.pid)


def wait_workers(server: SoteriaServer, count: int, timeout: float = 30.0) -> set[int]:
    """Until the gunicorn master has exactly `count` live workers; their PIDs."""
    return wait_for(lambda: (w := gunicorn_workers(server)) and len(w) == count and w, timeout,
                    f"{count} gunicorn workers")


@pytest.fixture
def soteria(sandbox, tmp_path):
    """Start Soteria (real gunicorn) on the sandbox: `soteria(workers=N, **env)`.
    Each gets its own data dir, so its counters start at zero; `data_dir=` restarts a
    server (stopping it first if it runs). All are stopped at teardown, and neither
    the master nor any worker may be left."""
    started: list[tuple[SoteriaServer, set[int]]] = []

    def start(workers: int = 2, data_dir: Path | None = None, **env) -> SoteriaServer:
        """A new data dir, unless `data_dir` (of a stopped server: a restart) is given."""
        env.setdefault("SOTERIA_POLICY_SECRET_NAME", POLICY_SECRET)
        if data_dir is None:
            data_dir = tmp_path / f"soteria-{len(started)}"
            data_dir.mkdir()
        else:
            for server, pids in started:
                if server.data_dir == data_dir:
                    stop(server, pids)
        server = start_soteria(sandbox, data_dir, workers=workers, **env)
        started.append((server, set()))
        started[-1][1].update(wait_workers(server, workers))
        return server

    def stop(server: SoteriaServer, pids: set[int]) -> None:
        if server.process.poll() is None:
            pids |= gunicorn_workers(server)
            stop_soteria(server)
        for pid in pids:  # workers die with their master; never leave one behind
            wait_for(lambda pid=pid: not alive(pid), 30, f"gunicorn worker {pid} to exit")

    yield start
    for server, pids in started:
        stop(server, pids)


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

    def __init__(self, server: SoteriaServer):
        self.server = server
        self.log_path = server.data_dir / "worker.log"
        log = open(self.log_path, "ab")
        # Its own process group: django-q2 forks a sentinel, workers, a monitor and a pusher.
        self.process = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=ROOT, env=server.env,
                                        stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        wait_for(lambda: self.process.poll() is None and b"running" in self.log_path.read_bytes()
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

        (success,) = wait_for(done, timeout, f"task {func} ({task_id}) to be run by the worker")
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

        wait_for(group_gone, 30, "the qcluster's processes to exit")


@pytest.fixture
def worker():
    """Start the real queue worker for a server: `worker(server)`; stopped at teardown."""
    workers: list[Worker] = []

    def start(server: SoteriaServer) -> Worker:
        workers.append(Worker(server))
        return workers[-1]

    yield start
    for w in workers:
        w.stop()


# --- a real Prometheus server --------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    def __init__(self, url: str, process: subprocess.Popen, log_path: Path):
        self.url, self.process, self.log_path = url, process, log_path

    def query(self, promql: str) -> list[dict]:
        status, body = http_json(f"{self.url}/api/v1/query?{urllib.parse.urlencode({'query': promql})}")
        assert status == 200 and body["status"] == "success", (status, body)
        return body["data"]["result"]

    def value(self, promql: str) -> float | None:
        """The value of a query that yields at most one series; None when it yields none."""
        result = self.query(promql)
        assert len(result) <= 1, f"{promql} yields {len(result)} series: {result}"
        return float(result[0]["value"][1]) if result else None


@pytest.fixture
def prometheus(tmp_path):
    """Start a real Prometheus (Debian's) scraping the given Soteria every second:
    `prometheus(server)`. Stopped at teardown; its process must be gone."""
    started: list[Prometheus] = []

    def start(server: SoteriaServer) -> Prometheus:
        home = tmp_path / f"prometheus-{len(started)}"
        home.mkdir()
        target = urllib.parse.urlsplit(server.url).netloc
        (home / "prometheus.yml").write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n"
            "scrape_configs:\n  - job_name: soteria\n    metrics_path: /metrics\n"
            f"    static_configs:\n      - targets: ['{target}']\n")
        port = free_port()
        log = open(home / "prometheus.log", "ab")
        process = subprocess.Popen(["prometheus", f"--config.file={home / 'prometheus.yml'}",
                                    f"--storage.tsdb.path={home / 'data'}",
                                    f"--web.listen-address=127.0.0.1:{port}"],
                                   cwd=home, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        prom = Prometheus(f"http://127.0.0.1:{port}", process, home / "prometheus.log")
        started.append(prom)

        def ready():
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {prom.log_path.read_text()[-3000:]}")
            try:
                return http(f"{prom.url}/-/ready", timeout=2)[0] == 200
            except OSError:
                return False

        wait_for(ready, 30, "prometheus to be ready")
        return prom

    yield start
    for prom in started:
        prom.process.terminate()
        try:
            prom.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            prom.process.kill()
            prom.process.wait(timeout=10)
        assert not alive(prom.process.pid)
