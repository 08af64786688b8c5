"""`promtool check metrics` on a real /metrics dump: only the two documented findings."""

import shutil
import subprocess

import pytest
import time_machine

from policies.services import refresh_inventory
from tests.support.fake_cluster import NOW

pytestmark = pytest.mark.django_db
# Contract names kept despite promtool's naming lint (docs/metrics.md).
KNOWN = {"pvc_backup_age_hours", "pvc_backup_count"}


def test_promtool_accepts_the_metrics_apart_from_the_contracts_two_names(client, cluster, settings):
    settings.SOTERIA_SECRET_NAMESPACE = "soteria"
    cluster.add_pvc("ai", "llm-cache", backups=[("Completed", 2, None)])
    with time_machine.travel(NOW, tick=False):
        refresh_inventory(now=NOW)
    client.post("/v1/backup", {"namespace": "ai", "pvc": "llm-cache", "dry_run": True},
                content_type="application/json")
    dump = client.get("/metrics").content
    result = subprocess.run([shutil.which("promtool"), "check", "metrics"], input=dump, capture_output=True,
                            timeout=60)
    findings = [line for line in result.stderr.decode().splitlines() + result.stdout.decode().splitlines()
                if line.strip()]
    flagged = {line.split()[0] for line in findings}
    assert flagged <= KNOWN, findings
