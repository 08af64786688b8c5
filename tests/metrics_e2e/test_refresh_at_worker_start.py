"""A restarted worker publishes the cached inventory at once (a task queued at its start),
not at django-q2's first scheduler tick half a minute later or a whole interval after that."""

import sqlite3

from tests.support.metrics import scrape
from tests.support.polling import wait_for_passing


def _tasks(server) -> list[tuple[str, bool]]:
    database = server.data_dir / "soteria.sqlite3"
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10) as db:
        return db.execute("SELECT name, success FROM django_q_task ORDER BY started").fetchall()


def test_the_worker_refreshes_the_inventory_as_it_starts(sandbox, soteria, worker):
    server = soteria(workers=1)
    assert scrape(server).select("pvc_backup_health") == {}  # nothing cached yet
    worker(server)

    def refreshed():
        return [(name, success) for name, success in _tasks(server) if name.startswith("soteria:inventory-refresh")]

    [(name, success)] = wait_for_passing(refreshed, 120, "the inventory refresh queued at the worker's start")
    assert name == "soteria:inventory-refresh (at start)" and success
    samples = scrape(server)
    assert samples.one("pvc_backup_health", namespace="ai", pvc="llm-cache") == 1
    assert samples.one("soteria_inventory_refresh_timestamp_seconds") > 0
