"""Every variable of the contract's Configuration section: default, parsing, refusal.

The settings module is executed afresh for each case with a controlled
environment, exactly as a process would at start-up.
"""

import runpy
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

SETTINGS = Path(__file__).resolve().parents[2] / "soteria_site" / "settings.py"
LONG = "0123456789abcdef0123456789abcdef01"  # 34 characters


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
        SOTERIA_AUTH_BEARER_TOKENS=f"ci:{LONG},plain-{LONG}",
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
    assert s["SOTERIA_AUTH_BEARER_TOKENS"] == [("ci", f"ci:{LONG}"), ("ci", LONG), ("token-2", f"plain-{LONG}")]
    assert s["SOTERIA_BACKUP_MAX_AGE_HOURS"] == 12.5
    assert s["SOTERIA_METRICS_REFRESH_SECONDS"] == 60
    assert s["SOTERIA_POLICY_EVAL_SECONDS"] == 120
    assert s["SOTERIA_POLICY_SECRET_NAME"] == "my-policies"


@pytest.mark.parametrize("variable,value,message", [
    ("SOTERIA_BACKUP_DRIVER", "tape", "use one of longhorn, restic, auto"),
    ("SOTERIA_LONGHORN_URL", "longhorn:9500", "http:// or https://"),
    ("SOTERIA_LONGHORN_BACKUP_MODE", "differential", "use one of incremental, full"),
    ("SOTERIA_LONGHORN_NAMESPACE", "Longhorn_System", "namespace name"),
    ("SOTERIA_RESTIC_BACKUP_ARGS", "--exclude 'x", "cannot split"),
    ("SOTERIA_RESTIC_FORGET_ARGS", '--keep "1', "cannot split"),
    ("SOTERIA_JOB_TTL_SECONDS", "-1", "at least 0"),
    ("SOTERIA_JOB_NODE_SELECTOR", "ssd", "key=value"),
    ("SOTERIA_LISTEN_ADDR", "8080", "host:port"),
    ("SOTERIA_AUTH_REQUIRED", "sometimes", "true or false"),
    ("SOTERIA_AUTH_BEARER_TOKENS", "short-token", "shorter than 32 characters"),
    ("SOTERIA_AUTH_HEADERS", "x-remote-user", "auto, x-auth-request, x-forwarded"),
    ("SOTERIA_MAX_BODY_BYTES", "100", "at least 1024"),
    ("SOTERIA_THROTTLE_MUTATIONS", "fast", "60/minute"),
    ("SOTERIA_THROTTLE_INVENTORY", "0/minute", "60/minute"),
    ("SOTERIA_METRICS_LISTEN_ADDR", "metrics", "host:port"),
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


def test_longhorn_namespace_defaults_to_longhorns_own(load):
    assert load()["SOTERIA_LONGHORN_NAMESPACE"] == "longhorn-system"
    assert load(SOTERIA_LONGHORN_NAMESPACE="storage")["SOTERIA_LONGHORN_NAMESPACE"] == "storage"


def test_secret_namespace_defaults_to_the_pods_own_namespace(load, tmp_path):
    sa = tmp_path / "sa"
    sa.mkdir()
    (sa / "namespace").write_text("backup-system\n")
    assert load()["SOTERIA_SECRET_NAMESPACE"] == "backup-system"


def test_secret_namespace_falls_back_to_pod_namespace(load):
    assert load(POD_NAMESPACE="ops")["SOTERIA_SECRET_NAMESPACE"] == "ops"


def test_bearer_tokens_may_come_from_a_file(load, tmp_path):
    tokens = tmp_path / "tokens"
    tokens.write_text(f"deploy:{LONG}\n")
    assert load(SOTERIA_AUTH_BEARER_TOKENS_FILE=str(tokens))["SOTERIA_AUTH_BEARER_TOKENS"] == [
        ("deploy", f"deploy:{LONG}"), ("deploy", LONG)]


@pytest.mark.parametrize("entry", [f"a b:{LONG}", f"x:y:{LONG}", f"{LONG} with spaces", f"näme:{LONG}",
                                   f"ci:short+{LONG[:25]}"])
def test_a_plain_token_is_always_accepted_verbatim_whatever_it_holds(load, entry):
    tokens = load(SOTERIA_AUTH_BEARER_TOKENS=entry)["SOTERIA_AUTH_BEARER_TOKENS"]
    assert entry in [token for _, token in tokens]


def test_a_named_token_whose_secret_is_short_is_only_its_whole_entry(load):
    entry = f"ci:short+{LONG[:25]}"
    assert load(SOTERIA_AUTH_BEARER_TOKENS=entry)["SOTERIA_AUTH_BEARER_TOKENS"] == [("token-1", entry)]


def test_short_tokens_start_only_when_explicitly_allowed(load):
    with pytest.raises(ImproperlyConfigured, match="entry 2 is shorter than 32 characters"):
        load(SOTERIA_AUTH_BEARER_TOKENS=f"{LONG},ci:short")
    allowed = load(SOTERIA_AUTH_BEARER_TOKENS="ci:short", SOTERIA_ALLOW_SHORT_TOKENS="true")
    assert allowed["SOTERIA_AUTH_BEARER_TOKENS"] == [("ci", "ci:short"), ("ci", "short")]


def test_trust_defaults_are_closed(load):
    s = load()
    assert s["SOTERIA_TRUSTED_PROXIES"] == []
    assert s["SOTERIA_AUTH_HEADERS"] == "auto"
    assert s["SOTERIA_MAX_BODY_BYTES"] == 65536 and s["DATA_UPLOAD_MAX_MEMORY_SIZE"] == 65536
    assert s["SOTERIA_THROTTLE_MUTATIONS"] == "60/minute" and s["SOTERIA_THROTTLE_INVENTORY"] == "20/minute"
    assert s["SOTERIA_METRICS_LISTEN_ADDR"] == ""
    assert load(SOTERIA_THROTTLE_INVENTORY="off")["SOTERIA_THROTTLE_INVENTORY"] is None


def test_metrics_listener_needs_a_port_of_its_own(load):
    assert load(SOTERIA_METRICS_LISTEN_ADDR=":9090")["SOTERIA_METRICS_LISTEN_ADDR"] == "0.0.0.0:9090"
    with pytest.raises(ImproperlyConfigured, match="another port"):
        load(SOTERIA_METRICS_LISTEN_ADDR="127.0.0.1:8080")


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


def test_admin_group_defaults_to_the_first_allowed_group(load):
    assert load()["SOTERIA_ADMIN_GROUP"] == "admin"
    assert load(SOTERIA_ALLOWED_GROUPS="/ops;admin")["SOTERIA_ADMIN_GROUP"] == "ops"


def test_admin_group_may_name_any_allowed_group(load):
    assert load(SOTERIA_ADMIN_GROUP="maintenance")["SOTERIA_ADMIN_GROUP"] == "maintenance"
    assert load(SOTERIA_ADMIN_GROUP="/maintenance")["SOTERIA_ADMIN_GROUP"] == "maintenance"


@pytest.mark.parametrize("value", ["viewers", "admin,maintenance", "Admin"])
def test_admin_group_outside_the_allowed_groups_stops_loading(load, value):
    with pytest.raises(ImproperlyConfigured) as error:
        load(SOTERIA_ADMIN_GROUP=value)
    assert str(error.value) == (f"SOTERIA_ADMIN_GROUP={value!r} is not valid: name one group of "
                                "SOTERIA_ALLOWED_GROUPS (admin, maintenance)")


def test_static_files_are_served_by_whitenoise_from_the_finders(load):
    s = load()
    assert s["WHITENOISE_USE_FINDERS"] is True
    middleware = s["MIDDLEWARE"]
    assert middleware.index("whitenoise.middleware.WhiteNoiseMiddleware") < middleware.index(
        "django.contrib.sessions.middleware.SessionMiddleware")
