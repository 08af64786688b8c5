"""A load run against a real Soteria: locust's clients (tests/support/load_locustfile.py) in
their own process, and /healthz sampled from this one throughout, as a kubelet's probe would.

`run_load` returns the figures: per request type the count, failures and latency percentiles
(locust's CSV, milliseconds), the /healthz samples, and the machine's load average before and
after (the figures are only as good as the machine was idle). `report` prints them as the
table docs/reliability.md quotes.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.client import HTTPConnection
from pathlib import Path
from urllib.parse import urlsplit

LOCUSTFILE = Path(__file__).with_name("load_locustfile.py")
PERCENTILES = ("50%", "90%", "99%", "100%")


@dataclass
class Stats:
    name: str
    requests: int
    failures: int
    per_second: float
    ms: dict[str, float]  # "50%", "90%", "99%", "100%" -> milliseconds


@dataclass
class HealthSamples:
    ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    sent: list[float] = field(default_factory=list)  # time.monotonic() of each probe
    answered: list[tuple[float, float]] = field(default_factory=list)  # (sent, ms) of each answer
    started: float = 0.0
    stopped: float = 0.0

    def throughout(self) -> bool:
        """Whether probes went out from the first tenth of the run to its last tenth."""
        tenth = (self.stopped - self.started) / 10
        return bool(self.sent) and min(self.sent) <= self.started + tenth and max(self.sent) >= self.stopped - tenth

    def slow_at(self, over_ms: float = 100) -> str:
        """When the probes over `over_ms` went out, in seconds from the start of the load."""
        when = [f"{sent - self.started:.1f} s" for sent, ms in self.answered if ms > over_ms]
        return f", sent at {', '.join(when[:10])}" if when else ""

    def percentile(self, p: float) -> float:
        ordered = sorted(self.ms)
        return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))] if ordered else 0.0


@dataclass
class LoadRun:
    users: int
    seconds: int
    stats: dict[str, Stats]
    failures: list[dict]
    healthz: HealthSamples
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]
    exit_code: int
    output: str


def _sample_healthz(url: str, every: float, stop: threading.Event, samples: HealthSamples,
                    started: Path) -> None:
    """Probe from the moment locust starts its test (`started` written) until `stop`: locust's
    own start-up, seconds of a CPU importing gevent and locust, is not the load."""
    while not started.exists():
        if stop.wait(0.01):
            return
    samples.started = time.monotonic()
    parts = urlsplit(url)
    while not stop.wait(every):
        samples.sent.append(time.monotonic())
        started = time.perf_counter()
        conn = HTTPConnection(parts.hostname, parts.port, timeout=10)  # a new connection, as a probe makes
        try:
            conn.request("GET", "/healthz")
            response = conn.getresponse()
            response.read()
            elapsed = (time.perf_counter() - started) * 1000
            samples.ms.append(elapsed)
            samples.answered.append((samples.sent[-1], elapsed))
            if response.status != 200:
                samples.errors.append(f"{response.status} after {elapsed:.0f} ms")
        except OSError as exc:
            samples.errors.append(f"{type(exc).__name__}: {exc}")
        finally:
            conn.close()


def _read_stats(path: Path) -> dict[str, Stats]:
    found = {}
    with path.open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["Name"] == "Aggregated":
                continue
            found[row["Name"]] = Stats(row["Name"], int(row["Request Count"]), int(row["Failure Count"]),
                                       float(row["Requests/s"]),
                                       {p: float(row[p]) if row[p] not in ("", "N/A") else 0.0 for p in PERCENTILES})
    return found


def run_load(url: str, token: str, workdir: Path, users: int, seconds: int, *, healthz_every: float = 0.1,
             namespace: str = "ai", pvc: str = "llm-cache") -> LoadRun:
    prefix = workdir / "locust"
    started = workdir / "locust-started"
    started.unlink(missing_ok=True)
    env = {**os.environ, "LOAD_TOKEN": token, "LOAD_NAMESPACE": namespace, "LOAD_PVC": pvc,
           "LOAD_STARTED_FILE": str(started)}
    command = [str(Path(sys.executable).with_name("locust")), "-f", str(LOCUSTFILE), "--headless",
               "--users", str(users), "--spawn-rate", str(users), "--run-time", f"{seconds}s", "--host", url,
               "--csv", str(prefix), "--only-summary", "--stop-timeout", "30", "--loglevel", "WARNING"]
    samples, stop = HealthSamples(), threading.Event()
    sampler = threading.Thread(target=_sample_healthz, args=(url, healthz_every, stop, samples, started),
                               daemon=True)
    load_before = os.getloadavg()
    sampler.start()
    try:
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + 120)
    finally:
        samples.stopped = time.monotonic()
        stop.set()
        sampler.join(15)
    load_after = os.getloadavg()
    stats_file = Path(f"{prefix}_stats.csv")
    assert stats_file.exists(), f"locust exited {done.returncode} without its figures:\n{done.stdout}{done.stderr}"
    failures_file = Path(f"{prefix}_failures.csv")
    failures = list(csv.DictReader(failures_file.open(newline=""))) if failures_file.exists() else []
    return LoadRun(users, seconds, _read_stats(stats_file), failures, samples, load_before,
                   load_after, done.returncode, (done.stdout + done.stderr)[-4000:])


def report(run: LoadRun) -> str:
    lines = [f"load: {run.users} clients for {run.seconds} s; load average before "
             f"{' '.join(f'{x:.2f}' for x in run.load_before)}, after {' '.join(f'{x:.2f}' for x in run.load_after)} "
             f"({os.cpu_count()} CPUs)",
             f"{'request':<16}{'count':>8}{'fail':>6}{'req/s':>8}" + "".join(f"{'p' + p[:-1]:>9}" for p in PERCENTILES)]
    for stats in run.stats.values():
        lines.append(f"{stats.name:<16}{stats.requests:>8}{stats.failures:>6}{stats.per_second:>8.1f}"
                     + "".join(f"{stats.ms[p]:>7.0f}ms" for p in PERCENTILES))
    health = run.healthz
    lines.append(f"{'/healthz':<16}{len(health.ms):>8}{len(health.errors):>6}{'':>8}"
                 + "".join(f"{health.percentile(p):>7.0f}ms" for p in (50, 90, 99, 100))
                 + f"  ({sum(ms > 100 for ms in health.ms)} over 100 ms{health.slow_at()})")
    return "\n".join(lines)
