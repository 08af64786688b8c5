"""deploy/: builds with a modern kustomize, validates strictly, and runs what the code expects."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> list[dict]:
    out = subprocess.run([str(BIN / "kubectl"), "kustomize", str(ROOT / "deploy")], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    path = tmp_path_factory.mktemp("deploy") / "all.yaml"
    path.write_text(out)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def _validate(path: Path) -> None:
    result = subprocess.run([str(BIN / "kubernetes-validate"), "--strict", "-k", "1.33.0", str(path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_kustomize_output_validates_strictly(tmp_path):
    out = subprocess.run([str(BIN / "kubectl"), "kustomize", str(ROOT / "deploy")], capture_output=True,
                         text=True, check=True, timeout=120).stdout
    (tmp_path / "all.yaml").write_text(out)
    _validate(tmp_path / "all.yaml")


def test_secret_example_validates_and_holds_no_real_credentials():
    _validate(ROOT / "deploy" / "secret-example.yaml")
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "secret-example.yaml").read_text()))
    restic = next(d for d in docs if d["metadata"]["name"] == "soteria-restic")
    assert set(restic["stringData"]) == {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD"}
    assert all("<" in v for d in docs for v in d["stringData"].values())


def test_pod_runs_web_and_worker_sharing_data_and_pids(built):
    deployment = next(d for d in built if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    assert containers["web"]["command"][:3] == ["gunicorn", "-c", "soteria_site/gunicorn.conf.py"]
    assert containers["worker"]["command"] == ["python", "manage.py", "qcluster"]
    assert pod["shareProcessNamespace"] is True
    assert containers["web"]["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert containers["web"]["livenessProbe"]["httpGet"]["path"] == "/healthz"
    for container in [*pod["containers"], *pod["initContainers"]]:
        assert {"name": "data", "mountPath": "/app/data"} in container["volumeMounts"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True


def test_configmap_sets_only_variables_soteria_reads(built):
    config = next(d for d in built if d["kind"] == "ConfigMap")
    settings_source = (ROOT / "soteria_site" / "settings.py").read_text()
    known = set(re.findall(r'"(SOTERIA_[A-Z_]+)"', settings_source))
    assert set(config["data"]) <= known


def test_service_is_annotated_for_prometheus(built):
    service = next(d for d in built if d["kind"] == "Service")
    assert service["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
