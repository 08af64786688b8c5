"""Parallel inventory callers share one build (targets 4 and 5 of the performance issue).

Seeds `scale` Longhorn PVCs (2 backups each) into a private sandbox, starts Soteria under
real gunicorn (2 workers, the default threads) and measures:

- one GET /v1/inventory alone: its wall time and its upstream list calls;
- 8 concurrent GET /v1/inventory: their upstream list calls as a ratio to one build's, their
  wall time (first sent to last answered) against one request's, how many were answered
  200 (the rest get 503 busy: each web process keeps one thread for probes), and the
  slowest /healthz answer while they ran (polled every 20 ms);
- GET /v1/policies with a stored inventory: the upstream list calls it makes (none).

Upstream calls are read from Soteria's own `soteria_upstream_requests_total` on /metrics
(summed over every web process), before and after.

    .venv/bin/python bench/flight_concurrency.py --scale 1000

`run(scale, port_base)` is what bench/run.py calls.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import Row, median, table  # noqa: E402

TARGET_4 = "4 parallel callers share work"
TARGET_5 = "5 nothing else rebuilds"
CONCURRENT = 8
UPSTREAM = re.compile(r'^soteria_upstream_requests_total\{([^}]*)\}\s+([0-9.e+]+)', re.M)


def upstream_lists(url: str) -> float:
    """Every upstream list call Soteria's web processes made so far (its own counter)."""
    with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
        text = response.read().decode()
    return sum(float(value) for labels, value in UPSTREAM.findall(text) if re.search(r'operation="[^"]*list"', labels))


def get(url: str, timeout: float = 300) -> tuple[int, float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        status = exc.code
    return status, time.monotonic() - started


def start_gunicorn(env: dict, data_dir: Path) -> subprocess.Popen:
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=REPO, env=env, check=True, timeout=300)
    log = open(data_dir / "gunicorn.log", "ab")
    process = subprocess.Popen([str(Path(sys.executable).with_name("gunicorn")), "-c", "soteria_site/gunicorn.conf.py",
                                "soteria_site.wsgi"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://{env['SOTERIA_LISTEN_ADDR']}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2):
                return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError((data_dir / "gunicorn.log").read_text()[-3000:]) from None
            time.sleep(0.2)


def idle_probes(url: str, seconds: float = 3.0) -> list[float]:
    """/healthz while nothing else is asked of Soteria: what the machine gives at best."""
    probes, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        probes.append(get(f"{url}/healthz", timeout=30)[1])
        time.sleep(0.02)
    return probes


def concurrent_round(url: str) -> dict:
    """CONCURRENT inventory requests at once, /healthz polled meanwhile."""
    statuses: list[int] = []
    probes: list[float] = []
    done = threading.Event()

    def probe():
        while not done.is_set():
            probes.append(get(f"{url}/healthz", timeout=30)[1])
            time.sleep(0.02)

    def one():
        statuses.append(get(f"{url}/v1/inventory")[0])

    prober = threading.Thread(target=probe)
    callers = [threading.Thread(target=one) for _ in range(CONCURRENT)]
    before = upstream_lists(url)
    prober.start()
    started = time.monotonic()
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    wall = time.monotonic() - started
    done.set()
    prober.join()
    return {"calls": upstream_lists(url) - before, "wall": wall, "ok": statuses.count(200),
            "busy": statuses.count(503), "healthz_max": max(probes, default=float("nan")),
            "healthz_median": median(probes), "probes": len(probes), "healthz": probes}


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def measure(url: str, env: dict, rounds: int) -> list[Row]:
    idle = idle_probes(url)
    singles, one_build_calls = [], 0.0
    for _ in range(rounds):
        before = upstream_lists(url)
        status, seconds = get(f"{url}/v1/inventory")
        assert status == 200, status
        singles.append(seconds)
        one_build_calls = upstream_lists(url) - before
    together = [concurrent_round(url) for _ in range(rounds)]
    every = sorted(p for r in together for p in r["healthz"])
    worst = max(together, key=lambda r: r["calls"])
    one = median(singles)
    rows = [
        Row(TARGET_4, f"upstream list calls of {CONCURRENT} concurrent GET /v1/inventory / one build's",
            worst["calls"] / one_build_calls, "x", limit=1.0,
            detail=f"{worst['calls']:.0f} vs {one_build_calls:.0f} calls; worst of {rounds} rounds"),
        Row(TARGET_4, f"wall time of {CONCURRENT} concurrent / one request", median([r["wall"] for r in together]) / one,
            "x", detail=f"{median([r['wall'] for r in together]):.2f} s vs {one:.2f} s (medians of {rounds})"),
        Row(TARGET_4, f"answered 200 of {CONCURRENT} concurrent", min(r["ok"] for r in together), "requests",
            detail=f"the rest 503 busy at once: {max(r['busy'] for r in together)} at most (2 workers x "
                   f"{env.get('SOTERIA_WEB_THREADS', 'default')} threads, one kept for probes)"),
        Row(TARGET_4, "/healthz slowest answer meanwhile", max(r["healthz_max"] for r in together) * 1000, "ms",
            limit=100, detail=f"{sum(r['probes'] for r in together)} probes, median "
                              f"{median([r['healthz_median'] for r in together]) * 1000:.0f} ms"),
        Row(TARGET_4, "/healthz 99th percentile meanwhile", _percentile(every, 0.99) * 1000, "ms",
            detail=f"{sum(p > 0.1 for p in every)} of {len(every)} probes over 100 ms"),
        Row(TARGET_4, "/healthz slowest answer with no request running", max(idle) * 1000, "ms",
            detail=f"{len(idle)} probes, median {median(idle) * 1000:.0f} ms: the machine's own noise"),
    ]
    subprocess.run([sys.executable, "manage.py", "shell", "-c",
                    "from policies.services import refresh_inventory; refresh_inventory()"],
                   cwd=REPO, env=env, check=True, timeout=600, capture_output=True)
    before = upstream_lists(url)
    status, _ = get(f"{url}/v1/policies")
    assert status == 200, status
    rows.append(Row(TARGET_5, "upstream list calls of GET /v1/policies (stored inventory)",
                    upstream_lists(url) - before, "calls", limit=0))
    return rows


def run(scale: int, port_base: int, rounds: int = 3, threads: int | None = None) -> list[Row]:
    from sandbox import cluster, faults, seed
    from sandbox.config import SandboxConfig

    cfg = SandboxConfig(state_dir=Path(tempfile.mkdtemp(prefix="soteria-bench-flight-")), port_base=port_base,
                        longhorn_crs_via_etcd=True)
    data_dir = Path(tempfile.mkdtemp(prefix="soteria-bench-flight-data-"))
    cluster.up(cfg, seed=False)
    process = None
    try:
        namespaces = max(1, scale // 100)
        seed.scale(cfg, namespaces, scale // namespaces, 2, prefix="flight", wait=True)
        faults.wait_mirrored(cfg, timeout=3600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
        env.update(cluster.exports(cfg))
        env.update(DJANGO_SETTINGS_MODULE="soteria_site.settings", SOTERIA_DATA_DIR=str(data_dir),
                   SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port_base + 90}", SOTERIA_WEB_WORKERS="2",
                   SOTERIA_SECURE_COOKIES="false", SOTERIA_THROTTLE_INVENTORY="off", SOTERIA_THROTTLE_MUTATIONS="off",
                   SOTERIA_UPSTREAM_TIMEOUT_SECONDS="300")
        if threads:
            env["SOTERIA_WEB_THREADS"] = str(threads)
        process = start_gunicorn(env, data_dir)
        return measure(f"http://127.0.0.1:{port_base + 90}", env, rounds)
    finally:
        if process is not None:
            process.terminate()
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        cluster.down(cfg)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=int, default=1000, help="Longhorn PVCs to seed")
    parser.add_argument("--port-base", type=int, default=29800)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None, help="SOTERIA_WEB_THREADS (default: Soteria's)")
    parser.add_argument("--json", action="store_true", help="the rows as JSON too")
    args = parser.parse_args()
    rows = run(args.scale, args.port_base, args.rounds, args.threads)
    print(table(rows))
    if args.json:
        print(json.dumps([row.__dict__ for row in rows]))


if __name__ == "__main__":
    main()
