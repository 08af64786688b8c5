"""`python -m sandbox up|status|down` as a developer uses them: idempotent, and nothing left behind."""

import os
import subprocess
import sys
from pathlib import Path

from tests.support.ports import TEST_PORT_BASE

REPO = Path(__file__).resolve().parents[2]
PORT_BASE = TEST_PORT_BASE + 30


def _sandbox(state_dir, *args, timeout=300):
    env = {**os.environ, "SOTERIA_SANDBOX_DIR": str(state_dir)}
    return subprocess.run([sys.executable, "-m", "sandbox", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)


def _processes_mentioning(text: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline:
            found.append(int(entry.name))
    return found


def test_up_is_idempotent_and_down_leaves_nothing_running(tmp_path):
    state = tmp_path / "sandbox"
    try:
        first = _sandbox(state, "up", "--no-seed", "--port-base", str(PORT_BASE))
        assert first.returncode == 0, first.stderr
        exports = dict(line.removeprefix("export ").split("=", 1) for line in first.stdout.splitlines())
        assert set(exports) >= {"KUBECONFIG", "SOTERIA_LONGHORN_URL", "SOTERIA_RESTIC_REPOSITORY",
                                "SOTERIA_S3_ENDPOINT"}
        status = _sandbox(state, "status")
        assert status.returncode == 0 and status.stdout.count("running pid") == 6, status.stdout
        pids = {line.split()[0]: int(line.split()[-1]) for line in status.stdout.splitlines()}
        again = _sandbox(state, "up")
        assert again.returncode == 0
        assert {line.split()[0]: int(line.split()[-1]) for line in _sandbox(state, "status").stdout.splitlines()} \
            == pids  # nothing restarted
    finally:
        down = _sandbox(state, "down")
    assert down.returncode == 0 and "kube-apiserver" in down.stdout
    for pid in pids.values():
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2]
    assert _processes_mentioning(str(state)) == []
    assert not state.exists()
    assert _sandbox(state, "status").returncode != 0
