"""A real Prometheus scraping real gunicorn: the contract's metrics as Prometheus sees them.

Soteria (2 gunicorn workers) and its real queue worker (django-q2) run on the
sandbox; the inventory snapshot is refreshed by the worker's own task, queued
through django-q2. A backup of a PVC never backed up must show in Prometheus as
one more backup once the backup completed and the snapshot was refreshed.
"""


from tests.support.http import http_json
from tests.support.metrics import scrape
from tests.support.polling import wait_for_passing

NS, PVC = "ai", "notebooks"  # seeded without any backup


def _refresh(worker, server) -> float:
    """Refresh the snapshot through the worker; returns its time as /metrics publishes it."""
    assert worker.run("policies.tasks.refresh_inventory")["refreshed"] is True
    stamp = scrape(server).one("soteria_inventory_refresh_timestamp_seconds")
    assert stamp is not None
    return stamp


def _prometheus_has_scraped(prom, stamp: float) -> bool:
    """Prometheus's newest sample is from a scrape made after the refresh at `stamp` (or a
    later one: the worker's scheduler may refresh too)."""
    value = prom.value("soteria_inventory_refresh_timestamp_seconds")
    return value is not None and value >= stamp


def test_prometheus_sees_the_contracts_metrics_change_with_a_real_backup(sandbox, soteria, worker, prometheus):
    server = soteria(workers=2)
    queue = worker(server)
    prom = prometheus(server)

    # Before anything: the counters' families exist at zero, the snapshot is the seeded world.
    stamp = _refresh(queue, server)
    wait_for_passing(lambda: prom.value('up{job="soteria"}') == 1, 20, "Prometheus's first scrape of Soteria")
    wait_for_passing(lambda: _prometheus_has_scraped(prom, stamp), 20, "a scrape after the first refresh")
    assert prom.value('soteria_backup_requests_total{driver="longhorn",result="success"}') == 0
    assert prom.value('soteria_backup_requests_total{driver="longhorn",result="rejected"}') == 0
    count_before = prom.value(f'pvc_backup_count{{namespace="{NS}",pvc="{PVC}"}}')
    assert count_before is not None, "a bound Longhorn PVC has its per-PVC series"
    if count_before == 0:  # as seeded (another test of the session may have backed it up)
        assert prom.value(f'pvc_backup_health{{namespace="{NS}",pvc="{PVC}"}}') == 0
        assert prom.value(f'pvc_backup_age_hours{{namespace="{NS}",pvc="{PVC}"}}') is None
        assert prom.value(f'pvc_backup_last_success_timestamp_seconds{{namespace="{NS}",pvc="{PVC}"}}') is None
    # PVCs nothing can back up have no per-PVC series.
    assert prom.value('pvc_backup_count{namespace="media",pvc="transcode-cache"}') is None
    assert prom.value('pvc_backup_count{namespace="databases",pvc="analytics-warehouse"}') is None

    # One real backup, and one request the driver rejects (not a Longhorn volume).
    status, answer = http_json(f"{server.url}/v1/backup", "POST",
                               {"namespace": NS, "pvc": PVC, "tags": ["metrics-e2e"], "dry_run": False})
    assert status == 200, answer
    assert answer["dry_run"] is False and answer["driver"] == "longhorn"
    status, refused = http_json(f"{server.url}/v1/backup", "POST",
                                {"namespace": "media", "pvc": "transcode-cache"})
    assert status == 422, refused

    def completed():
        status, body = http_json(f"{server.url}/v1/backups?namespace={NS}&pvc={PVC}")
        assert status == 200, body
        mine = [b for b in body["backups"] if answer["backup"] in (b["snapshot"], b["name"])]
        assert mine, f"backup {answer['backup']} not listed: {body['backups']}"
        assert mine[0]["state"] not in ("Error", "Failed"), mine[0]
        return mine[0]["state"] == "Completed"

    wait_for_passing(completed, 60, f"backup {answer['backup']} to complete")

    stamp = _refresh(queue, server)
    wait_for_passing(lambda: _prometheus_has_scraped(prom, stamp), 20, "a scrape after the refresh")
    assert prom.value(f'pvc_backup_count{{namespace="{NS}",pvc="{PVC}"}}') == count_before + 1
    assert prom.value(f'pvc_backup_health{{namespace="{NS}",pvc="{PVC}"}}') == 1
    assert prom.value(f'pvc_backup_age_hours{{namespace="{NS}",pvc="{PVC}"}}') < 0.1
    assert prom.value('pvc_backup_health{namespace="ai",pvc="llm-cache"}') == 1
    assert prom.value('pvc_backup_health{pvc="model-store"}') == 0  # newest backup 30 h old
    assert prom.value('pvc_backup_count{pvc="model-store"}') >= 3
    assert prom.value('soteria_backup_requests_total{driver="longhorn",result="success"}') == 1
    assert prom.value('soteria_backup_requests_total{driver="longhorn",result="rejected"}') == 1
    assert prom.value('sum(soteria_backup_requests_total{result=~"dry_run|conflict|error"})') == 0
    assert prom.value("soteria_inventory_refresh_failures_total") == 0
    # The queue worker's counters are summed in too: only its inventory refreshes list Longhorn's
    # volumes, from their CRDs (at least the two this test queued; its scheduler may have added one).
    assert prom.value('soteria_upstream_requests_total{system="kubernetes",operation="longhorn.volumes.list",'
                      'outcome="ok"}') >= 2
