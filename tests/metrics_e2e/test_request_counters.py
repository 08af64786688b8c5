"""soteria_backup_requests_total counts every backup request by its result, as
docs/metrics.md says: `rejected` for 400/404/422, `error` for upstream failures,
including requests refused before the driver is called (an unknown PVC, an
invalid name, Kubernetes unreachable while the PVC is looked up), so that
SoteriaBackupsFailing sees backups failing because Kubernetes is down.
"""

import yaml

from tests.support.http import http_json
from tests.support.metrics import scrape


def _count(server, result: str) -> float:
    return scrape(server).one("soteria_backup_requests_total", driver="longhorn", result=result)


def test_a_driver_refusal_is_counted_as_rejected(sandbox, soteria):
    server = soteria(workers=1)
    status, body = http_json(f"{server.url}/v1/backup", "POST", {"namespace": "media", "pvc": "transcode-cache"})
    assert status == 422 and body["error"] == "unsupported_driver", body
    assert _count(server, "rejected") == 1


def test_every_rejected_backup_request_is_counted(sandbox, soteria):
    server = soteria(workers=1)
    for body, expected in (({"namespace": "ai", "pvc": "no-such-pvc"}, 404),
                           ({"namespace": "ai", "pvc": "Not_A_Name"}, 400),
                           ({"namespace": "ai"}, 400)):
        status, answer = http_json(f"{server.url}/v1/backup", "POST", body)
        assert status == expected, answer
    assert _count(server, "rejected") == 3


def test_a_backup_failing_because_kubernetes_is_unreachable_is_counted_as_error(sandbox, soteria, tmp_path):
    config = yaml.safe_load(sandbox.kubeconfig.read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = "https://127.0.0.1:9"  # nothing listens there
    unreachable = tmp_path / "kubeconfig-unreachable"
    unreachable.write_text(yaml.safe_dump(config))
    server = soteria(workers=1, KUBECONFIG=str(unreachable))
    status, answer = http_json(f"{server.url}/v1/backup", "POST", {"namespace": "ai", "pvc": "notebooks"})
    assert status == 503 and answer["error"] == "kubernetes_unavailable", answer
    assert _count(server, "error") == 1
