"""Start-up as an operator sees it: real processes, real exit codes, one clear line."""

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.support.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SOTERIA_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="soteria_site.settings")
    env.update(extra)
    return env


@pytest.mark.parametrize("variable,value", [
    ("SOTERIA_BACKUP_DRIVER", "tape"),
    ("SOTERIA_BACKUP_MAX_AGE_HOURS", "abc"),
    ("SOTERIA_LISTEN_ADDR", "everywhere"),
])
def test_manage_py_refuses_a_bad_variable_in_one_line(tmp_path, variable, value):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=_env(tmp_path, **{variable: value}), timeout=60)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("soteria: configuration error: " + variable)


@pytest.mark.parametrize("driver", ["restic", "auto"])
def test_restic_driver_without_repository_fails_the_system_check(tmp_path, driver):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=_env(tmp_path, SOTERIA_BACKUP_DRIVER=driver), timeout=60)
    assert result.returncode != 0
    assert "soteria.E001" in result.stderr and f"SOTERIA_RESTIC_REPOSITORY is required when SOTERIA_BACKUP_DRIVER={driver}" \
        in result.stderr


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = _env(tmp_path, SOTERIA_SECRET_KEY="k" * 20 + "-production-secret-key-0123456789abcdef")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("variable,value,expected", [
    ("SOTERIA_BACKUP_DRIVER", "tape", "SOTERIA_BACKUP_DRIVER='tape'"),
    ("SOTERIA_BACKUP_DRIVER", "restic", "SOTERIA_RESTIC_REPOSITORY"),
    ("SOTERIA_AUTH_BEARER_TOKENS", "ci:too-short", "SOTERIA_AUTH_BEARER_TOKENS entry 1 is shorter than 32 characters"),
])
def test_gunicorn_refuses_to_start_on_bad_configuration(tmp_path, variable, value, expected):
    result = subprocess.run([str(GUNICORN), "-c", "soteria_site/gunicorn.conf.py", "soteria_site.wsgi"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=_env(tmp_path, SOTERIA_LISTEN_ADDR=f"127.0.0.1:{free_port()}", **{variable: value}))
    assert result.returncode != 0
    assert expected in result.stderr


def _serving(tmp_path, **env):
    """gunicorn started with `env`, once it answers /healthz on SOTERIA_LISTEN_ADDR."""
    port = free_port()
    env.setdefault("SOTERIA_LISTEN_ADDR", f"127.0.0.1:{port}")
    proc = subprocess.Popen([str(GUNICORN), "-c", "soteria_site/gunicorn.conf.py", "soteria_site.wsgi"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(tmp_path, SOTERIA_WEB_WORKERS="1", **env))
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://{env['SOTERIA_LISTEN_ADDR']}/healthz", timeout=2) as resp:
                assert resp.status == 200
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("gunicorn did not answer on SOTERIA_LISTEN_ADDR: " + proc.stderr.read().decode()[-2000:])
            time.sleep(0.2)


def _stop(proc) -> None:
    proc.terminate()
    proc.wait(timeout=30)


def test_gunicorn_listens_on_soteria_listen_addr(tmp_path):
    _stop(_serving(tmp_path))


def test_short_tokens_start_when_explicitly_allowed(tmp_path):
    _stop(_serving(tmp_path, SOTERIA_AUTH_BEARER_TOKENS="ci:too-short", SOTERIA_ALLOW_SHORT_TOKENS="true"))


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_metrics_listener_serves_only_metrics_and_probes(tmp_path):
    main, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    subprocess.run([sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=_env(tmp_path), check=True,
                   timeout=120)
    proc = _serving(tmp_path, SOTERIA_LISTEN_ADDR=main, SOTERIA_METRICS_LISTEN_ADDR=metrics,
                    SOTERIA_AUTH_REQUIRED="true", SOTERIA_LONGHORN_URL="http://127.0.0.1:9")
    try:
        assert _status(f"http://{metrics}/metrics") == 200
        assert _status(f"http://{metrics}/healthz") == 200
        assert _status(f"http://{metrics}/v1/whoami") == 404
        assert _status(f"http://{metrics}/") == 404
        assert _status(f"http://{main}/metrics") == 404
        assert _status(f"http://{main}/healthz") == 200
        assert _status(f"http://{main}/v1/whoami") == 401
    finally:
        _stop(proc)


def test_manage_py_refuses_an_admin_group_that_is_not_allowed(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=_env(tmp_path, SOTERIA_ALLOWED_GROUPS="ops", SOTERIA_ADMIN_GROUP="admin"), timeout=60)
    assert result.returncode != 0
    assert result.stderr.strip() == ("soteria: configuration error: SOTERIA_ADMIN_GROUP='admin' is not valid: "
                                     "name one group of SOTERIA_ALLOWED_GROUPS (ops)")
