"""Fixtures for the end-to-end metrics tests: real gunicorn on the session sandbox,
the real django-q2 worker, a real Prometheus server (helpers in tests/support).

Every process started here is stopped at teardown, by PID (or by the process
group it was started in), and checked to be gone.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.metrics import POLICY_SECRET
from tests.support.polling import wait_for_passing
from tests.support.processes import alive
from tests.support.prometheus import Prometheus, start_prometheus, stop_prometheus
from tests.support.soteria import SoteriaServer, Worker, gunicorn_workers, start_soteria, stop_soteria, wait_workers


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
            wait_for_passing(lambda pid=pid: not alive(pid), 30, f"gunicorn worker {pid} to exit")

    yield start
    for server, pids in started:
        stop(server, pids)


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


@pytest.fixture
def prometheus(tmp_path):
    """Start a real Prometheus (Debian's) scraping the given Soteria every second:
    `prometheus(server)`. Stopped at teardown; its process must be gone."""
    started: list[Prometheus] = []

    def start(server: SoteriaServer) -> Prometheus:
        home = tmp_path / f"prometheus-{len(started)}"
        home.mkdir()
        return start_prometheus(home, server, started)

    yield start
    for prom in started:
        stop_prometheus(prom)
