"""`manage.py migrate` alone prepares a fresh database, the cache's table included."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _manage(tmp_path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SOTERIA_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(SOTERIA_DATA_DIR=str(tmp_path / "data"), DJANGO_SETTINGS_MODULE="soteria_site.settings")
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, capture_output=True, text=True, env=env,
                          timeout=120)


def test_migrate_alone_prepares_the_database_cache(tmp_path):
    assert _manage(tmp_path, "migrate", "--noinput", "-v", "0").returncode == 0
    check = _manage(tmp_path, "shell", "-v", "0", "-c",
                    "from django.core.cache import cache; cache.set('soteria-probe', 41); print(cache.get('soteria-probe') + 1)")
    assert check.returncode == 0, check.stderr[-2000:]
    assert check.stdout.strip() == "42"


def test_migrate_twice_changes_nothing(tmp_path):
    assert _manage(tmp_path, "migrate", "--noinput", "-v", "0").returncode == 0
    again = _manage(tmp_path, "migrate", "--noinput")
    assert again.returncode == 0, again.stderr[-2000:]
    assert "No migrations to apply" in again.stdout
