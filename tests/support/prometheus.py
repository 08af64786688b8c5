"""A real Prometheus server (Debian's) scraping a Soteria every second."""

from __future__ import annotations

import subprocess
import urllib.parse
from pathlib import Path

from .http import http, http_json
from .polling import wait_for_passing
from .ports import free_port
from .processes import alive
from .soteria import SoteriaServer


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


def start_prometheus(home: Path, server: SoteriaServer, started: list[Prometheus]) -> Prometheus:
    """Prometheus with its config and data in `home` (an empty directory), scraping `server`;
    appended to `started` as soon as its process exists, then waited for until ready."""
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

    wait_for_passing(ready, 30, "prometheus to be ready")
    return prom


def stop_prometheus(prom: Prometheus) -> None:
    """Stop it; its process must be gone."""
    prom.process.terminate()
    try:
        prom.process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        prom.process.kill()
        prom.process.wait(timeout=10)
    assert not alive(prom.process.pid)
