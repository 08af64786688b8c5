"""/readyz follows each dependency: it turns to 503 naming the one that failed within
seconds of the failure, and back to 200 by itself within seconds of the recovery.

Kubernetes is reached through the fault proxy (sandbox/fault_proxy.py): refused, hanging,
answering 500. Longhorn through the emulator's faults (erroring, hanging) or stopped. The
restic repository's S3 through a TCP fault proxy (refused, hanging). Each test prints the
seconds it measured (docs/reliability.md quotes them)."""

from __future__ import annotations

import time

import pytest

from sandbox import cluster, faults
from sandbox.fault_proxy import KubeFaultProxy, TcpFaultProxy
from tests.support.kube_faults import through_proxy
from tests.support.polling import wait_for
from tests.support.reliability import size

pytestmark = pytest.mark.django_db(transaction=True)
READY_TIMEOUT = 2.0
# A failure shows within one probe's timeout (never doubled by a retry), plus the poll's step.
TURN_LIMIT = READY_TIMEOUT + 2
# Back at the next probe; on a loaded machine a probe's own run (restic's) may miss its
# timeout once more.
RECOVER_LIMIT = 3 * READY_TIMEOUT + 4


@pytest.fixture
def kube_proxy(live, settings, tmp_path):
    proxy = KubeFaultProxy(live)
    through_proxy(settings, proxy, tmp_path)
    yield proxy
    proxy.close()


@pytest.fixture
def s3_proxy(live, settings):
    """The restic driver, its repository (the sandbox's) reached through a TCP fault proxy."""
    proxy = TcpFaultProxy(("127.0.0.1", live.port("s3")))
    settings.SOTERIA_BACKUP_DRIVER = "restic"
    settings.SOTERIA_S3_ENDPOINT = f"http://{proxy.address}"
    settings.SOTERIA_RESTIC_REPOSITORY = f"s3:http://{proxy.address}/soteria-restic/repo"
    yield proxy
    proxy.close()


def seconds_until(client, dependency: str, ok: bool, timeout: float = 60.0) -> float:
    """Seconds until /readyz says `dependency` answers (`ok`), or answers 503 naming it. Only
    that dependency is judged: on a loaded machine the others may be slow for a moment too."""
    started = time.monotonic()

    def turned():
        response = client.get("/readyz")
        body = response.json()
        if ok:
            return body["checks"][dependency]["ok"]
        return response.status_code == 503 and dependency in body.get("failed", []) \
            and not body["checks"][dependency]["ok"]

    wait_for(turned, timeout, f"/readyz {'with ' + dependency + ' ok' if ok else 'naming ' + dependency}",
             interval=0.1)
    return time.monotonic() - started


def measured(client, name: str, failed: str, fail, recover) -> tuple[float, float]:
    seconds_until(client, failed, ok=True)
    fail()
    try:
        turn = seconds_until(client, failed, ok=False)
    finally:
        recover()
    back = seconds_until(client, failed, ok=True)
    print(f"\nreadiness {name}: 503 naming {failed} after {turn:.2f}s, {failed} ok again {back:.2f}s after recovery")
    assert turn <= TURN_LIMIT and back <= RECOVER_LIMIT, (turn, back)
    return turn, back


KUBE_FAULTS = size(ci=["refused", "hang"], full=["refused", "hang", "error_500", "error_503"])


@pytest.mark.parametrize("fault", KUBE_FAULTS)
def test_readyz_follows_the_kubernetes_api(client, live, settings, kube_proxy, fault):
    settings.SOTERIA_READY_TIMEOUT_SECONDS = READY_TIMEOUT

    def fail():
        if fault == "refused":
            kube_proxy.pause()
        elif fault == "hang":
            kube_proxy.add("GET", "/version/?", "hang", count=0)
        else:
            kube_proxy.add("GET", "/version/?", status=int(fault.rsplit("_", 1)[1]), count=0)

    def recover():
        kube_proxy.resume()
        kube_proxy.clear()

    measured(client, f"kubernetes {fault}", "kubernetes", fail, recover)


LONGHORN_FAULTS = size(ci=["error", "hang"], full=["error", "hang", "stopped"])


@pytest.mark.parametrize("fault", LONGHORN_FAULTS)
def test_readyz_follows_the_longhorn_manager(client, live, settings, fault):
    settings.SOTERIA_READY_TIMEOUT_SECONDS = READY_TIMEOUT

    def fail():
        if fault == "stopped":
            cluster.stop_service(live, "longhorn")
        else:
            faults.inject(live, "apiversion", mode="error" if fault == "error" else "timeout", count=0,
                          message="manager restarting")

    def recover():
        if fault == "stopped":
            cluster.start_service(live, "longhorn")
        faults.clear(live)

    measured(client, f"longhorn {fault}", "longhorn", fail, recover)


S3_FAULTS = size(ci=["refused"], full=["refused", "hang", "reset"])


@pytest.mark.parametrize("fault", S3_FAULTS)
def test_readyz_follows_the_restic_repository(client, live, settings, s3_proxy, fault):
    settings.SOTERIA_READY_TIMEOUT_SECONDS = READY_TIMEOUT

    def fail():
        if fault == "refused":
            s3_proxy.pause()
        else:
            s3_proxy.set_mode(fault)

    def recover():
        s3_proxy.set_mode("forward")
        s3_proxy.resume()

    measured(client, f"restic repository {fault}", "restic", fail, recover)
