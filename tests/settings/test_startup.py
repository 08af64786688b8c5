"""Start-up as an operator sees it: real processes, real exit codes, one clear line."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUNICORN = Path(sys.executable).with_name("gunicorn")


def _env(tmp_path, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SOTERIA_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="soteria_site.settings")
    env.update(extra)
    return env


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


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


def test_restic_driver_without_repository_fails_the_system_check(tmp_path):
    result = subprocess.run([sys.executable, "manage.py", "check"], cwd=ROOT, capture_output=True, text=True,
                            env=_env(tmp_path, SOTERIA_BACKUP_DRIVER="restic"), timeout=60)
    assert result.returncode != 0
    assert "soteria.E001" in result.stderr and "SOTERIA_RESTIC_REPOSITORY" in result.stderr


def test_check_deploy_passes_with_production_settings(tmp_path):
    env = _env(tmp_path, SOTERIA_SECRET_KEY="k" * 20 + "-production-secret-key-0123456789abcdef")
    result = subprocess.run([sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
                            cwd=ROOT, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.parametrize("variable,value,expected", [
    ("SOTERIA_BACKUP_DRIVER", "tape", "SOTERIA_BACKUP_DRIVER='tape'"),
    ("SOTERIA_BACKUP_DRIVER", "restic", "SOTERIA_RESTIC_REPOSITORY"),
])
def test_gunicorn_refuses_to_start_on_bad_configuration(tmp_path, variable, value, expected):
    result = subprocess.run([str(GUNICORN), "-c", "soteria_site/gunicorn.conf.py", "soteria_site.wsgi"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60,
                            env=_env(tmp_path, SOTERIA_LISTEN_ADDR=f"127.0.0.1:{_free_port()}", **{variable: value}))
    assert result.returncode != 0
    assert expected in result.stderr


def test_gunicorn_listens_on_soteria_listen_addr(tmp_path):
    port = _free_port()
    proc = subprocess.Popen([str(GUNICORN), "-c", "soteria_site/gunicorn.conf.py", "soteria_site.wsgi"],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env=_env(tmp_path, SOTERIA_LISTEN_ADDR=f"127.0.0.1:{port}", SOTERIA_WEB_WORKERS="1"))
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not answer on SOTERIA_LISTEN_ADDR"
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
