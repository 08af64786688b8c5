"""Counters are summed over every gunicorn worker, and survive a worker's death.

Real gunicorn with 3 workers; 60 dry-run backups over many connections land
on several workers (the access log names the worker PID of each request), and
every scrape, whichever worker answers it, reads exactly 60. A worker killed
with SIGKILL is replaced by gunicorn; its counts stay (its counter file is
kept) and the child_exit hook drops its live gauges.
"""

import os
import re
import signal
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from prometheus_client.mmap_dict import MmapedDict, mmap_key

from tests.support.http import http, http_json
from tests.support.metrics import scrape
from tests.support.polling import wait_for_passing
from tests.support.processes import alive
from tests.support.soteria import gunicorn_workers

# The bound Longhorn PVCs of the demo data. One thread per PVC: a dry run holds the
# PVC's lock too, so two at once on one PVC would (rightly) answer 409.
PVCS = [("ai", "llm-cache"), ("ai", "model-store"), ("ai", "notebooks"), ("media", "photos"),
        ("databases", "postgres-data"), ("databases", "redis-data")]
PER_PVC = 10
TOTAL = len(PVCS) * PER_PVC
# The access log names the worker PID of each request.
ACCESS_FORMAT = "--access-logformat 'ACCESS %(p)s \"%(r)s\" %(s)s'"
ACCESS = re.compile(r'^ACCESS <(\d+)> "(\w+) (\S+) [^"]*" (\d+)$')


def _served(server) -> list[tuple[int, str, str, int]]:
    """(worker pid, method, path, status) of every request in the access log, in order."""
    lines = (server.data_dir / "gunicorn.log").read_text().splitlines()
    return [(int(m[1]), m[2], m[3], int(m[4])) for m in map(ACCESS.match, lines) if m]


def _dry_runs(server, pvc: tuple[str, str]) -> list[int]:
    statuses = []
    for _ in range(PER_PVC):
        status, body = http_json(f"{server.url}/v1/backup", "POST",
                                 {"namespace": pvc[0], "pvc": pvc[1], "dry_run": True})
        assert status != 200 or body["dry_run"] is True, body
        statuses.append(status)
    return statuses


def _scrape_many(server, times: int = 12) -> list[float]:
    """Scrape concurrently over new connections; the dry-run count of each scrape."""
    with ThreadPoolExecutor(max_workers=4) as pool:
        return list(pool.map(lambda _: scrape(server).one("soteria_backup_requests_total", driver="longhorn",
                                                          result="dry_run"), range(times)))


def _probe_live_gauge(metrics_dir, pid: int) -> None:
    """A live gauge in worker `pid`'s name, as prometheus_client writes one for a
    gauge in `livesum` mode: only the child_exit hook removes it."""
    probe = MmapedDict(str(metrics_dir / f"gauge_livesum_{pid}.db"))
    probe.write_value(mmap_key("soteria_e2e_probe", "soteria_e2e_probe", [], [], "A probe of the test."), 1.0, 0.0)
    probe.close()


def test_counters_are_summed_over_workers_and_kept_when_one_dies(sandbox, soteria):
    server = soteria(workers=3, GUNICORN_CMD_ARGS=ACCESS_FORMAT)
    metrics_dir = server.data_dir / "metrics"
    assert scrape(server).one("soteria_backup_requests_total", driver="longhorn", result="dry_run") == 0

    with ThreadPoolExecutor(max_workers=len(PVCS)) as pool:
        statuses = [s for batch in pool.map(lambda pvc: _dry_runs(server, pvc), PVCS) for s in batch]
    assert statuses == [200] * TOTAL

    def posts_logged():  # a worker writes the access log line just after it answered
        posts = Counter(pid for pid, method, path, _ in _served(server) if (method, path) == ("POST", "/v1/backup"))
        return sum(posts.values()) == TOTAL and posts

    posts = wait_for_passing(posts_logged, 10, f"{TOTAL} POST lines in the access log")
    assert len(posts) > 1, f"every request went to one worker: {posts}"
    assert set(posts) <= gunicorn_workers(server)

    # Whichever worker answers, the count is the sum over all of them.
    assert _scrape_many(server) == [TOTAL] * 12
    samples = scrape(server)
    assert samples.one("soteria_backup_requests_total", driver="longhorn", result="success") == 0
    assert samples.one("soteria_backup_requests_total", driver="longhorn", result="conflict") == 0
    scraped_by = {pid for pid, method, path, _ in _served(server) if path == "/metrics"}

    # SIGKILL the worker that served the most backups: gunicorn replaces it.
    victim = posts.most_common(1)[0][0]
    assert (metrics_dir / f"counter_{victim}.db").exists()
    _probe_live_gauge(metrics_dir, victim)
    assert scrape(server).one("soteria_e2e_probe") == 1
    before = gunicorn_workers(server)
    os.kill(victim, signal.SIGKILL)
    wait_for_passing(lambda: not alive(victim), 10, f"worker {victim} to die")
    after = wait_for_passing(lambda: (w := gunicorn_workers(server)) and len(w) == 3 and victim not in w and w,
                             30, "gunicorn to replace the killed worker")
    (new_worker,) = after - before
    gunicorn_log = server.data_dir / "gunicorn.log"
    wait_for_passing(lambda: f"Booting worker with pid: {new_worker}" in gunicorn_log.read_text(), 30,
                     "the new worker to boot")
    log = gunicorn_log.read_text()
    assert "Traceback" not in log, log[-3000:]
    assert server.process.poll() is None

    # The dead worker's counts are kept; the child_exit hook dropped its live gauge.
    assert (metrics_dir / f"counter_{victim}.db").exists()
    assert not (metrics_dir / f"gauge_livesum_{victim}.db").exists()
    assert _scrape_many(server) == [TOTAL] * 12
    assert scrape(server).one("soteria_e2e_probe") is None

    # The new worker counts on top of them.
    status, _ = http_json(f"{server.url}/v1/backup", "POST", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True})
    assert status == 200
    assert _scrape_many(server, 6) == [TOTAL + 1] * 6
    scraped_by |= {pid for pid, method, path, _ in _served(server) if path == "/metrics"}
    assert len(scraped_by) > 1, f"every scrape went to one worker: {scraped_by}"
    assert http(f"{server.url}/healthz")[0] == 200



def test_counters_never_go_down_when_a_container_restarts(sandbox, soteria, worker):
    """The pod's two containers restart independently; whichever starts must not delete
    the counts of processes that died, or the summed counters would go down (a reset to
    Prometheus, so a spurious increase() that could fire SoteriaBackupsFailing)."""
    server = soteria(workers=2, GUNICORN_CMD_ARGS=ACCESS_FORMAT)
    with ThreadPoolExecutor(max_workers=3) as pool:
        statuses = [s for batch in pool.map(lambda pvc: _dry_runs(server, pvc), PVCS[:3]) for s in batch]
    assert statuses == [200] * 30
    victim = Counter(pid for pid, method, path, _ in _served(server) if method == "POST").most_common(1)[0][0]
    os.kill(victim, signal.SIGKILL)
    wait_for_passing(lambda: (w := gunicorn_workers(server)) and len(w) == 2 and victim not in w, 30,
                     "gunicorn to replace the killed worker")
    assert _scrape_many(server, 4) == [30] * 4

    # The worker container (re)starts while a web worker's counts are only in a dead PID's file.
    queue = worker(server)
    assert _scrape_many(server, 4) == [30] * 4

    # The web container restarts while the worker container runs on.
    restarted = soteria(workers=2, data_dir=server.data_dir)
    assert queue.process.poll() is None
    assert _scrape_many(restarted, 4) == [30] * 4
    status, _ = http_json(f"{restarted.url}/v1/backup", "POST", {"namespace": "ai", "pvc": "notebooks",
                                                                 "dry_run": True})
    assert status == 200
    assert _scrape_many(restarted, 4) == [31] * 4
