"""/metrics carries PVC names as Kubernetes allows them (dots, 253 characters) in its labels."""

import pytest
import time_machine

from policies.services import refresh_inventory
from tests.metrics.test_freshness_metrics import pvc, scrape
from tests.support.fake_cluster import NOW

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("policy_secret_settings")]
LONGEST = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 253 characters


def test_dotted_and_long_pvc_names_are_metric_labels_in_full(client, cluster):
    from policies import services

    cluster.add_pvc("ai", "data.primary-2026", longhorn_volume="pvc-d", backups=[("Completed", 2, None)])
    cluster.add_pvc("ai", LONGEST, longhorn_volume="pvc-l", backups=[("Completed", 30, None)])
    services.save_policy("ai", LONGEST, 6, True, None, [], "t")
    with time_machine.travel(NOW, tick=False):
        assert refresh_inventory(now=NOW) is not None
    samples = scrape(client)
    assert samples[("pvc_backup_health", pvc("ai", "data.primary-2026", "pvc-d"))] == 1
    assert samples[("pvc_backup_health", pvc("ai", LONGEST, "pvc-l"))] == 0
    assert samples[("pvc_backup_expected_interval_seconds", pvc("ai", LONGEST, "pvc-l"))] == 6 * 3600
