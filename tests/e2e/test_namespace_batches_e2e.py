"""Namespace batches against the sandbox's Longhorn emulator: a few PVCs at a time, never more
than SOTERIA_NAMESPACE_CONCURRENCY calls in flight (the emulator records its peak), and a
namespace restore answered at once, its claims then restored and shown with their progress."""

import pytest

from sandbox import faults, seed
from tests.support.http import post
from tests.support.polling import wait_for

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def slow_longhorn(live):
    """Every Longhorn call takes 50 ms, so calls of parallel PVCs overlap."""
    faults.set_call_delay(live, 0.05)
    faults.reset_calls(live)
    yield live
    faults.set_call_delay(live, 0)


def test_a_namespace_backup_keeps_to_the_concurrency_cap(client, live, slow_longhorn, settings):
    settings.SOTERIA_NAMESPACE_CONCURRENCY = 2
    for i in range(6):
        seed.make_pvc(live, "e2e-cap", f"data-{i}")
    faults.reset_calls(live)
    body = post(client, "/v1/backup/namespace", {"namespace": "e2e-cap"}).json()
    assert body["totals"]["success"] == 6, body
    assert 1 <= faults.peak_concurrency(live) <= 2


def test_a_namespace_restore_is_queued_and_its_claims_then_show_their_progress(client, live, slow_longhorn,
                                                                               settings):
    settings.SOTERIA_NAMESPACE_CONCURRENCY = 2
    for i in range(4):
        seed.make_pvc(live, "e2e-nsq", f"data-{i}", backups=[{"state": "Completed", "created": "2026-11-01T00:00:00Z",
                                                               "size": "1048576", "snapshotName": f"snap-{i}"}])
    seed.ensure_basics(live, ["e2e-nsq-to"])
    faults.reset_calls(live)
    body = post(client, "/v1/restores/namespace", {"namespace": "e2e-nsq", "target_namespace": "e2e-nsq-to"}).json()
    assert {r["pvc"]: r["status"] for r in body["results"]} == {f"data-{i}": "queued" for i in range(4)}, body
    assert 1 <= faults.peak_concurrency(live) <= 2

    def all_listed():
        rows = client.get("/v1/restores?namespace=e2e-nsq-to").json()["restores"]
        return rows if len(rows) == 4 else None
    rows = wait_for(all_listed, what="four restored claims")
    assert {r["source"] for r in rows} == {f"e2e-nsq/data-{i}" for i in range(4)}
    assert {r["state"] for r in rows} <= {"restoring", "done"}
