"""deploy/monitoring: rules that promtool accepts and tests, a dashboard over real metric names."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "deploy" / "monitoring"
PROMTOOL = shutil.which("promtool")


def test_promtool_checks_the_rules():
    result = subprocess.run([PROMTOOL, "check", "rules", str(MONITORING / "rules.yaml")], capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_unit_tests_every_alert():
    result = subprocess.run([PROMTOOL, "test", "rules", "rules_test.yaml"], cwd=MONITORING, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    tested = set(re.findall(r"alertname: (\w+)", (MONITORING / "rules_test.yaml").read_text()))
    alerts = {r["alert"] for g in yaml.safe_load((MONITORING / "rules.yaml").read_text())["groups"] for r in g["rules"]}
    assert alerts == tested


def test_prometheusrule_holds_exactly_the_rules_file():
    rule = yaml.safe_load((MONITORING / "prometheusrule.yaml").read_text())
    assert rule["kind"] == "PrometheusRule"
    assert rule["spec"] == yaml.safe_load((MONITORING / "rules.yaml").read_text())


@pytest.mark.django_db
def test_rules_and_dashboard_use_only_metrics_soteria_exports(client):
    exported = {line.split()[2] for line in client.get("/metrics").content.decode().splitlines()
                if line.startswith("# TYPE ")}
    names = set()
    for kind in ("", "_total", "_bucket", "_count", "_sum"):
        names |= {n + kind for n in exported}
    texts = [(MONITORING / "rules.yaml").read_text(), (MONITORING / "grafana-dashboard.json").read_text()]
    used = set()
    for text in texts:
        used |= set(re.findall(r"\b((?:pvc|soteria|django)_[a-z_]+)\b", text))
    assert used <= names, used - names


def test_dashboard_is_valid_json_with_namespace_variable():
    dashboard = json.loads((MONITORING / "grafana-dashboard.json").read_text())
    assert dashboard["uid"] == "soteria-backups"
    assert any(v["name"] == "namespace" for v in dashboard["templating"]["list"])
    assert len(dashboard["panels"]) >= 8
