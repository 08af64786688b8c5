"""/metrics at scale, and how soon a started worker publishes the first cached inventory
(targets 3 and 6 of docs/performance.md).

Seeds `scale` Longhorn PVCs (one backup each: a scrape's cost grows with the rows, not
with the backups) into a private sandbox, starts Soteria as it runs in a cluster (gunicorn
with 2 workers, then the django-q2 worker) and measures:

- the time from starting the worker to the first cached inventory in the database, and how
  much of it the refresh itself took;
- with the worker stopped again (so that nothing else calls upstream), ~200 scrapes of
  /metrics: their median time, and the upstream calls made meanwhile (the emulator's count of
  Longhorn calls plus Soteria's own count of its Kubernetes calls, which must both stay 0).

Run alone (results go in docs/performance.md):

    .venv/bin/python bench/metrics_scale.py --scale 10000

bench/run.py calls `run(scale, port_base)`. The sandbox, the servers and the worker are
stopped at the end, each by its process id.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench.common import Row, median  # noqa: E402

SCRAPES = 200
WEB_WORKERS = 2


def _get(url: str, timeout: float = 60.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as response:
        return response.read()


def _wait(condition, timeout: float, what: str, process: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the process exited {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.05)


def _upstream_total(text: str) -> float:
    """Soteria's own count of its upstream requests, every process summed (all outcomes)."""
    from prometheus_client.parser import text_string_to_metric_families

    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples if sample.name == "soteria_upstream_requests_total")


def _published(database: Path) -> tuple[float, float] | None:
    """(when the first cached inventory was seen, its refresh duration), or None."""
    try:
        with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5) as db:
            row = db.execute("SELECT duration_seconds FROM backups_cachedinventory WHERE id = 1").fetchone()
    except sqlite3.OperationalError:  # not migrated yet, or busy
        return None
    return (time.monotonic(), row[0]) if row else None


def _stop(process: subprocess.Popen, group: bool = False) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
    if group:  # django-q2 forks a sentinel, workers, a monitor and a pusher into this group
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    process.wait(timeout=30)


def _shape(scale: int) -> tuple[int, int]:
    """(namespaces, PVCs per namespace) for `scale` PVCs: at most 100 per namespace."""
    per = min(scale, 100)
    return max(1, scale // per), per


def _scrapes(url: str) -> dict:
    """Scrape /metrics: once per web worker (each renders the rows), then SCRAPES times."""
    cold = []
    for _ in range(WEB_WORKERS):
        t0 = time.monotonic()
        _get(f"{url}/metrics")
        cold.append(time.monotonic() - t0)
    before = _upstream_total(_get(f"{url}/metrics").decode())
    timings, body = [], b""
    for _ in range(SCRAPES):
        t0 = time.monotonic()
        body = _get(f"{url}/metrics")
        timings.append(time.monotonic() - t0)
    return {"cold": max(cold), "timings": timings, "size": len(body),
            "series": sum(1 for line in body.decode().splitlines() if line.startswith("pvc_backup_health{")),
            "kube_calls": _upstream_total(_get(f"{url}/metrics").decode()) - before}


def _scrape_rows(scrapes: dict, at: str, longhorn_calls: int | None, how: str = "") -> list[Row]:
    timings, kube = scrapes["timings"], scrapes["kube_calls"]
    calls = kube + (longhorn_calls or 0)
    counted = f"Longhorn {longhorn_calls}, Kubernetes {kube:g}" if longhorn_calls is not None else \
        f"Soteria's own count of its upstream requests: {kube:g}"
    return [
        Row("3 /metrics", f"GET /metrics median of {SCRAPES} scrapes, {at}{how}", median(timings) * 1000, "ms", 50,
            f"p90 {sorted(timings)[int(SCRAPES * 0.9)] * 1000:.1f} ms; gunicorn {WEB_WORKERS} workers"),
        Row("3 /metrics", f"upstream calls during {SCRAPES} scrapes{how}", calls, "calls", 0, counted),
        Row("3 /metrics", f"first scrape after a change (renders the rows){how}", scrapes["cold"] * 1000, "ms",
            detail=f"once per web worker per change; answer {scrapes['size'] / 2 ** 20:.1f} MiB, "
                   f"{scrapes['series']:,} PVC series"),
    ]


def _env(data: Path, port: int, extra: dict) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    env.update(DJANGO_SETTINGS_MODULE="soteria_site.settings", SOTERIA_DATA_DIR=str(data),
               SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port}", SOTERIA_WEB_WORKERS=str(WEB_WORKERS),
               SOTERIA_SECURE_COOKIES="false", SOTERIA_UPSTREAM_TIMEOUT_SECONDS="300")
    for command in (["migrate", "-v", "0"], ["createcachetable"]):
        subprocess.run([sys.executable, "manage.py", *command], cwd=REPO, env=env, check=True, timeout=300)
    return env


def _start_web(data: Path, env: dict, port: int) -> tuple[subprocess.Popen, str]:
    web_log = open(data / "gunicorn.log", "ab")
    web = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "soteria_site/gunicorn.conf.py",
                            "soteria_site.wsgi"], cwd=REPO, env=env, stdout=web_log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"

    def healthy():
        try:
            return _get(f"{url}/healthz", timeout=2) is not None
        except OSError:
            return False

    try:
        _wait(healthy, 120, "gunicorn to answer", web)
    except BaseException:
        _stop(web)
        raise
    return web, url


SYNTHETIC_ROWS = """
import uuid
from datetime import datetime, timezone
from backups.models import CachedInventory, CachedRowChange
from backups.services import inventory_cache
rows = [{"namespace": f"bench-{n // 100:03d}", "pvc": f"data-{n % 100:04d}", "volume": f"pvc-bench-{n:06d}",
         "driver": "longhorn", "last_success": 1.7e9 + n, "age_hours": 1.5, "healthy": True, "count": 50,
         "reason": "fresh", "in_progress": 0, "interval": 21600.0 if n % 2 else None, "policies_known": True,
         "verified_at": None, "verify_result": "", "verdict": ""} for n in range(ROWS)]
CachedInventory.objects.update_or_create(id=1, defaults={"generated_at": datetime.now(timezone.utc), "rows": rows})
CachedRowChange.objects.create(namespace="", pvc="", kind=inventory_cache.REPLACED, fields={"revision": uuid.uuid4().hex})
"""


def run_synthetic(scale: int, port_base: int) -> list[Row]:
    """Scrapes only, over `scale` rows written straight into the database as a refresh writes
    them (no sandbox: when seeding is too slow for the time at hand). Upstream calls are
    Soteria's own count; Longhorn points at a closed loopback port, Kubernetes at nothing."""
    work = Path(tempfile.mkdtemp(prefix="soteria-bench-metrics-"))
    data = work / "data"
    data.mkdir()
    port = port_base + 10
    closed = f"127.0.0.1:{port_base + 11}"
    web = None
    try:
        env = _env(data, port, {"SOTERIA_LONGHORN_URL": f"http://{closed}"})
        subprocess.run([sys.executable, "manage.py", "shell", "-c", SYNTHETIC_ROWS.replace("ROWS", str(scale))],
                       cwd=REPO, env=env, check=True, timeout=600)
        web, url = _start_web(data, env, port)
        scrapes = _scrapes(url)
    finally:
        if web is not None:
            _stop(web)
        shutil.rmtree(work, ignore_errors=True)
    return _scrape_rows(scrapes, f"{scale:,} PVCs", None, " (rows written directly)")


def run(scale: int, port_base: int) -> list[Row]:
    from sandbox import cluster, faults, seed
    from sandbox.config import SandboxConfig

    work = Path(tempfile.mkdtemp(prefix="soteria-bench-metrics-"))
    cfg = SandboxConfig(state_dir=work / "sandbox", port_base=port_base, longhorn_crs_via_etcd=True)
    processes: list[tuple[subprocess.Popen, bool]] = []
    try:
        cluster.up(cfg, seed=False)
        namespaces, per = _shape(scale)
        try:
            seed.scale(cfg, namespaces, per, 1, prefix="bench", wait=True)
        except TimeoutError:  # the emulator is still writing Longhorn's CRs (slow on a loaded machine)
            faults.wait_mirrored(cfg, timeout=3600)
            seed.wait_bound(cfg, [(f"bench-{n:03d}", f"data-{m:04d}") for n in range(namespaces) for m in range(per)],
                            timeout=600)
        data = work / "data"
        data.mkdir()
        port = port_base + 10  # above the sandbox's own ports (sandbox/config.py)
        env = _env(data, port, cluster.exports(cfg))
        web, url = _start_web(data, env, port)
        processes.append((web, False))
        python = sys.executable

        # Target 6: worker start -> first cached inventory in the database.
        worker_log = open(data / "worker.log", "ab")
        started = time.monotonic()
        worker = subprocess.Popen([python, "manage.py", "qcluster"], cwd=REPO, env=env, stdout=worker_log,
                                  stderr=subprocess.STDOUT, start_new_session=True)
        processes.append((worker, True))
        seen, refresh_seconds = _wait(lambda: _published(data / "soteria.sqlite3"), 1800,
                                      "the first cached inventory", worker)
        first_snapshot = seen - started
        _stop(worker, group=True)

        # Target 3: scrapes. The first scrape of each web worker renders the rows.
        faults.reset_calls(cfg)
        scrapes = _scrapes(url)
        longhorn_calls = sum(faults.calls(cfg).values())
    finally:
        for process, group in reversed(processes):
            _stop(process, group)
        cluster.down(cfg)
        shutil.rmtree(work, ignore_errors=True)
    at = f"{namespaces * per:,} PVCs"
    return _scrape_rows(scrapes, at, longhorn_calls) + [
        Row("6 first snapshot", f"worker start -> first cached inventory, {at}", first_snapshot, "s", 10,
            f"of which the refresh itself {refresh_seconds:.1f} s"),
        Row("6 first snapshot", "worker start -> refresh begun", max(first_snapshot - refresh_seconds, 0), "s",
            detail="the worker's start-up and its queue, without the refresh"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=10_000, help="PVCs")
    parser.add_argument("--port-base", type=int, default=29400)
    parser.add_argument("--synthetic", action="store_true",
                        help="scrapes only, over rows written straight into the database (no sandbox, no seed)")
    args = parser.parse_args()
    from bench import common

    print(common.table((run_synthetic if args.synthetic else run)(args.scale, args.port_base)))


if __name__ == "__main__":
    main()
