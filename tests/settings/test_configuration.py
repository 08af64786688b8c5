"""Every variable of the contract's Configuration section: default, parsing, refusal.

The settings module is executed afresh for each case with a controlled
environment, exactly as a process would at start-up.
"""

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "soteria_site" / "settings.py"


@pytest.fixture
def load(monkeypatch, tmp_path):
    def _load(**variables):
        for key in list(__import__("os").environ):
            if key.startswith("SOTERIA_") or key in ("POD_NAMESPACE", "KUBERNETES_SERVICE_HOST"):
                monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("SOTERIA_DATA_DIR", str(tmp_path / "data"))
        monkeypatch.setenv("SOTERIA_SERVICE_ACCOUNT_DIR", str(tmp_path / "sa"))
        for key, value in variables.items():
            monkeypatch.setenv(key, value)
        return runpy.run_path(str(SETTINGS), run_name="soteria_site.settings_under_test")

    return _load


def test_defaults_are_the_contracts(load):
    s = load()
    assert s["SOTERIA_BACKUP_DRIVER"] == "longhorn"
    assert s["SOTERIA_LONGHORN_URL"] == "http://longhorn-backend.longhorn-system.svc:9500"
    assert s["SOTERIA_LONGHORN_BACKUP_MODE"] == "incremental"
    assert s["SOTERIA_RESTIC_REPOSITORY"] == ""
    assert s["SOTERIA_RESTIC_SECRET_NAME"] == "soteria-restic"
    assert s["SOTERIA_SECRET_NAMESPACE"] == "soteria"
    assert s["SOTERIA_RESTIC_IMAGE"] == "restic/restic:0.16.4"
    assert s["SOTERIA_RESTIC_BACKUP_ARGS"] == [] and s["SOTERIA_RESTIC_FORGET_ARGS"] == []
    assert s["SOTERIA_S3_ENDPOINT"] == "" and s["SOTERIA_S3_REGION"] == ""
    assert s["SOTERIA_JOB_TTL_SECONDS"] == 86400
    assert s["SOTERIA_JOB_NODE_SELECTOR"] == {}
    assert s["SOTERIA_JOB_SERVICE_ACCOUNT"] == ""
    assert s["SOTERIA_LISTEN_ADDR"] == "0.0.0.0:8080"
    assert s["SOTERIA_AUTH_REQUIRED"] is False
    assert s["SOTERIA_ALLOWED_GROUPS"] == ["admin", "maintenance"]
    assert s["SOTERIA_AUTH_BEARER_TOKENS"] == []
    assert s["SOTERIA_BACKUP_MAX_AGE_HOURS"] == 24
    assert s["SOTERIA_METRICS_REFRESH_SECONDS"] == 300
    assert s["SOTERIA_POLICY_EVAL_SECONDS"] == 300
    assert s["SOTERIA_POLICY_SECRET_NAME"] == "soteria-policies"


def test_every_contract_variable_is_read(load):
    s = load(
        SOTERIA_BACKUP_DRIVER="restic",
        SOTERIA_LONGHORN_URL="http://lh.example:9500/",
        SOTERIA_LONGHORN_BACKUP_MODE="full",
        SOTERIA_RESTIC_REPOSITORY="s3:https://s3.example/bucket/soteria",
        SOTERIA_RESTIC_SECRET_NAME="restic-creds",
        SOTERIA_SECRET_NAMESPACE="backup-system",
        SOTERIA_RESTIC_IMAGE="restic/restic:0.17.0",
        SOTERIA_RESTIC_BACKUP_ARGS="--exclude '*.tmp'",
        SOTERIA_RESTIC_FORGET_ARGS="--keep-daily 7 --prune",
        SOTERIA_S3_ENDPOINT="https://s3.example",
        SOTERIA_S3_REGION="eu-west-1",
        SOTERIA_JOB_TTL_SECONDS="600",
        SOTERIA_JOB_NODE_SELECTOR="disk=ssd,zone=a",
        SOTERIA_JOB_SERVICE_ACCOUNT="restic-runner",
        SOTERIA_LISTEN_ADDR="127.0.0.1:9000",
        SOTERIA_AUTH_REQUIRED="true",
        SOTERIA_ALLOWED_GROUPS="/ops; maintenance,",
        SOTERIA_AUTH_BEARER_TOKENS="ci:0123456789abcdef0123,plaintoken-0123456789",
        SOTERIA_BACKUP_MAX_AGE_HOURS="12.5",
        SOTERIA_METRICS_REFRESH_SECONDS="60",
        SOTERIA_POLICY_EVAL_SECONDS="120",
        SOTERIA_POLICY_SECRET_NAME="my-policies",
    )
    assert s["SOTERIA_BACKUP_DRIVER"] == "restic"
    assert s["SOTERIA_LONGHORN_URL"] == "http://lh.example:9500"
    assert s["SOTERIA_LONGHORN_BACKUP_MODE"] == "full"
    assert s["SOTERIA_RESTIC_REPOSITORY"] == "s3:https://s3.example/bucket/soteria"
    assert s["SOTERIA_RESTIC_SECRET_NAME"] == "restic-creds"
    assert s["SOTERIA_SECRET_NAMESPACE"] == "backup-system"
    assert s["SOTERIA_RESTIC_IMAGE"] == "restic/restic:0.17.0"
    assert s["SOTERIA_RESTIC_BACKUP_ARGS"] == ["--exclude", "*.tmp"]
    assert s["SOTERIA_RESTIC_FORGET_ARGS"] == ["--keep-daily", "7", "--prune"]
    assert s["SOTERIA_S3_ENDPOINT"] == "https://s3.example"
    assert s["SOTERIA_S3_REGION"] == "eu-west-1"
    assert s["SOTERIA_JOB_TTL_SECONDS"] == 600
    assert s["SOTERIA_JOB_NODE_SELECTOR"] == {"disk": "ssd", "zone": "a"}
    assert s["SOTERIA_JOB_SERVICE_ACCOUNT"] == "restic-runner"
    assert s["SOTERIA_LISTEN_ADDR"] == "127.0.0.1:9000"
    assert s["SOTERIA_AUTH_REQUIRED"] is True
    assert s["SOTERIA_ALLOWED_GROUPS"] == ["ops", "maintenance"]
    assert s["SOTERIA_AUTH_BEARER_TOKENS"] == [("ci", "0123456789abcdef0123"), ("token-2", "plaintoken-0123456789")]
    assert s["SOTERIA_BACKUP_MAX_AGE_HOURS"] == 12.5
    assert s["SOTERIA_METRICS_REFRESH_SECONDS"] == 60
    assert s["SOTERIA_POLICY_EVAL_SECONDS"] == 120
    assert s["SOTERIA_POLICY_SECRET_NAME"] == "my-policies"


@pytest.mark.parametrize("variable,value,message", [
    ("SOTERIA_BACKUP_DRIVER", "tape", "use one of longhorn, restic"),
    ("SOTERIA_LONGHORN_URL", "longhorn:9500", "http:// or https://"),
    ("SOTERIA_LONGHORN_BACKUP_MODE", "differential", "use one of incremental, full"),
    ("SOTERIA_RESTIC_BACKUP_ARGS", "--exclude 'x", "cannot split"),
    ("SOTERIA_RESTIC_FORGET_ARGS", '--keep "1', "cannot split"),
    ("SOTERIA_JOB_TTL_SECONDS", "-1", "at least 0"),
    ("SOTERIA_JOB_NODE_SELECTOR", "ssd", "key=value"),
    ("SOTERIA_LISTEN_ADDR", "8080", "host:port"),
    ("SOTERIA_AUTH_REQUIRED", "sometimes", "true or false"),
    ("SOTERIA_AUTH_BEARER_TOKENS", "bad name:tok", "name:token"),
    ("SOTERIA_BACKUP_MAX_AGE_HOURS", "abc", "expected a number"),
    ("SOTERIA_BACKUP_MAX_AGE_HOURS", "0", "greater than 0"),
    ("SOTERIA_METRICS_REFRESH_SECONDS", "5", "at least 10"),
    ("SOTERIA_POLICY_EVAL_SECONDS", "soon", "whole number"),
    ("SOTERIA_SECRET_KEY", "short", "too short"),
])
def test_a_bad_value_stops_loading_with_the_variable_named(load, variable, value, message):
    with pytest.raises(ImproperlyConfigured) as info:
        load(**{variable: value})
    assert variable in str(info.value)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_secret_namespace_defaults_to_the_pods_own_namespace(load, tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "namespace").write_text("backup-system\n")
    assert load()["SOTERIA_SECRET_NAMESPACE"] == "backup-system"


def test_secret_namespace_falls_back_to_pod_namespace(load):
    assert load(POD_NAMESPACE="ops")["SOTERIA_SECRET_NAMESPACE"] == "ops"


def test_bearer_tokens_may_come_from_a_file(load, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text("deploy:aaaaaaaaaaaaaaaaaaaa\n")
    assert load(SOTERIA_AUTH_BEARER_TOKENS_FILE=str(tokens))["SOTERIA_AUTH_BEARER_TOKENS"] == [
        ("deploy", "aaaaaaaaaaaaaaaaaaaa")]


def test_data_dir_is_created_and_keeps_a_stable_secret_key(load, tmp_path):
    first = load()
    assert (tmp_path / "data").is_dir()
    assert (tmp_path / "data" / "metrics").is_dir()
    assert load()["SECRET_KEY"] == first["SECRET_KEY"]
    assert len(first["SECRET_KEY"]) >= 50


def test_data_dir_that_cannot_be_created_is_reported(load, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(ImproperlyConfigured, match="SOTERIA_DATA_DIR=.*cannot be created"):
        load(SOTERIA_DATA_DIR=str(blocker / "data"))
