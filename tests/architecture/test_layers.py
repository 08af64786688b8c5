"""The layer contract (.importlinter) holds, names every layer, and catches a back-import."""

import configparser
import pkgutil
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("soteria_site", "backups", "policies")


def _contract(name: str) -> dict:
    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    return config[f"importlinter:contract:{name}"]


def _layers(name: str) -> list[str]:
    return [line.strip() for line in _contract(name)["layers"].strip().splitlines()]


def _lint(tree: Path) -> subprocess.CompletedProcess:
    return subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tree, capture_output=True, text=True, timeout=120,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(tree)})


def test_dependencies_point_one_way_today():
    result = _lint(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]


def test_the_contract_orders_wiring_policies_backups_web_and_kernel():
    layers = _layers("layers")
    assert layers[1:] == ["policies", "backups", "soteria_site.web", "soteria_site.core"]
    assert _layers("backups-layers") == ["api | console | tasks | metrics_export", "forms", "services", "drivers",
                                         "clients", "types : models : metrics : manifests : manifest_reader"]


def test_every_wiring_module_is_in_the_top_layer():
    """A new module of soteria_site outside the kernels must be named in the top layer, or the
    contract would not see it import an app."""
    top = {name.strip() for name in _layers("layers")[0].split(":")}
    modules = {f"soteria_site.{m.name}" for m in pkgutil.iter_modules([str(ROOT / "soteria_site")])
               if m.name not in ("core", "web", "gunicorn")}
    assert modules - top == set()


@pytest.mark.parametrize(("module", "back_import", "expected"), [
    ("soteria_site/core/errors.py", "import backups.types", "soteria_site.core is not allowed to import backups"),
    ("soteria_site/web/identity.py", "import policies.types", "soteria_site.web is not allowed to import policies"),
    ("backups/services/inventory.py", "import policies.evaluate", "backups is not allowed to import policies"),
    ("backups/drivers/base.py", "import backups.services.claims",
     "backups.drivers is not allowed to import backups.services"),
    ("backups/api/views.py", "import soteria_site.urls", "backups is not allowed to import soteria_site.urls"),
])
def test_a_back_import_breaks_the_contract(tmp_path, module, back_import, expected):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / ".importlinter", tmp_path / ".importlinter")
    with open(tmp_path / module, "a") as out:
        out.write(f"\n{back_import}  # a back-import\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert expected in result.stdout
