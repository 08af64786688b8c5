"""Mixed load against real gunicorn on the sandbox, auth on (bearer token): locust's clients
read the inventory, plan backups (dry runs) and ask whoami, while /healthz is sampled every
100 ms from a separate client. Every answer must be right (200 with its promised fields);
the latencies are printed, not asserted (the machine is shared; docs/reliability.md has the
figures of `./dev reliability` and the load average they were taken at).

Sizes: 10 clients for 10 s in the suite, 50 clients for 60 s under `./dev reliability`.
"""

from __future__ import annotations

import time

import pytest

from tests.support.cast import AUTOMATION, SECURE_ENV, TOKEN
from tests.support.http import call
from tests.support.load_run import report, run_load
from tests.support.reliability import size
from tests.support.soteria import start_soteria, stop_soteria

USERS = size(10, 50)
SECONDS = size(10, 60)


@pytest.fixture(scope="module")
def server(sandbox, tmp_path_factory):
    """Soteria as deploy/ ships it (2 web workers, the Longhorn driver), auth on, with threads for
    its clients: every client may be reading the inventory (a long request) at once, and the
    busy guard refuses (503 `busy`) a long request beyond SOTERIA_WEB_THREADS - 1 per process.
    At the default 4 threads, 10 such clients already met that refusal (docs/reliability.md)."""
    server = start_soteria(sandbox, tmp_path_factory.mktemp("load-data"), workers=2,
                           SOTERIA_WEB_THREADS=USERS + 2, **SECURE_ENV)
    yield server
    stop_soteria(server)


def test_mixed_load_is_answered_without_errors_and_healthz_keeps_answering(server, tmp_path):
    started = time.monotonic()
    warm = call(server.url, "GET", "/v1/inventory", headers=AUTOMATION, timeout=120)
    assert warm.status == 200, warm.text
    print(f"\nfirst inventory (the first build, before the load): {time.monotonic() - started:.1f} s")
    run = run_load(server.url, TOKEN, tmp_path, USERS, SECONDS)
    print("\n" + report(run))
    assert set(run.stats) == {"inventory", "backup dry run", "whoami"}, run.output
    assert all(s.requests > 0 for s in run.stats.values()), report(run)
    assert run.failures == [], f"{report(run)}\n{run.failures}"
    assert sum(s.failures for s in run.stats.values()) == 0, report(run)
    assert run.exit_code == 0, run.output
    # /healthz answered every probe (each within the probe's 10 s), from the start of the load to its end.
    assert run.healthz.errors == [], run.healthz.errors[:20]
    assert run.healthz.throughout(), report(run)
