"""The manifest reader as a Job runs it: `python3 -c <its text> ROOT ...` on a tree of files."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from backups import manifest_reader
from backups.manifests import Manifest, parse_output, reader_source
from tests.support.drills import write_tree as write

FILES = {"a.txt": b"alpha\n", "empty": b"", "nested/deeper/rows.csv": b"id,v\n1,1\n2,4\n",
         "with spaces and \u00fcn\u00efc\u00f8d\u00e9.txt": "\u2713\n".encode(), "blob.bin": bytes(range(256)) * 64}


def run(root: Path, *options: str) -> tuple[Manifest, dict]:
    """(the parsed manifest, the raw JSON line) of one run of the reader's text, as a Job runs it."""
    done = subprocess.run([sys.executable, "-c", reader_source(), str(root), *options], capture_output=True,
                          text=True, timeout=60, check=True)
    return parse_output(done.stdout), json.loads(done.stdout.strip().splitlines()[-1])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_the_manifest_counts_regular_files_and_their_bytes_and_hashes_the_sample(tmp_path):
    root = write(tmp_path / "claim", FILES)
    (root / "link").symlink_to("a.txt")  # not followed, not counted
    manifest, raw = run(root, "--sample", "32")
    assert raw["format"] == "soteria-manifest/1"
    assert manifest.files == len(FILES) and manifest.bytes == sum(map(len, FILES.values()))
    assert {e.path: (e.size, e.sha256) for e in manifest.sample} == {
        rel: (len(data), sha(data)) for rel, data in FILES.items()}
    assert manifest.error_count == 0 and manifest.changed_files == 0 and len(manifest.digest) == 64


def test_the_sample_depends_on_the_paths_only(tmp_path):
    """Two trees holding the same paths (other contents) sample the same files: the smallest
    SHA-256 of their paths, so a restore is checked on the files its source's manifest hashed."""
    paths = [f"dir-{i % 7}/file-{i}.dat" for i in range(60)]
    one = write(tmp_path / "one", {p: p.encode() for p in paths})
    two = write(tmp_path / "two", {p: p.encode() * 3 for p in reversed(paths)})
    first, _ = run(one, "--sample", "5")
    second, _ = run(two, "--sample", "5")
    expected = sorted(paths, key=lambda p: sha(p.encode()))[:5]
    assert [e.path for e in first.sample] == [e.path for e in second.sample] == expected
    assert [e.size for e in second.sample] == [3 * e.size for e in first.sample]
    assert first.digest != second.digest  # the contents differ
    again, _ = run(one, "--sample", "5")
    assert again.digest == first.digest and again.sample == first.sample


def test_files_changed_since_the_point_in_time_are_left_out(tmp_path):
    root = write(tmp_path / "claim", {"old/kept.txt": b"kept\n", "old/too.txt": b"too\n"})
    since = max(max(os.lstat(p).st_mtime, os.lstat(p).st_ctime) for p in root.rglob("*") if p.is_file()) + 0.001
    write(root, {"hot/log.txt": b"written after the backup\n", "old/too.txt": b"changed later\n"})
    for rel in ("hot/log.txt", "old/too.txt"):  # changed after `since`, whatever the clock's grain
        os.utime(root / rel, (since + 3600, since + 3600))
    manifest, _ = run(root, "--since", f"{since:.3f}")
    assert manifest.files == 1 and manifest.bytes == len(b"kept\n")
    assert [e.path for e in manifest.sample] == ["old/kept.txt"]
    assert manifest.changed_files == 2 and manifest.changed_bytes == len(b"written after the backup\nchanged later\n")
    assert manifest.since == pytest.approx(since, abs=0.001)


def test_expect_answers_each_path_with_its_content_or_why_not(tmp_path):
    root = write(tmp_path / "claim", FILES)
    (tmp_path / "outside.txt").write_bytes(b"not the claim's")
    asked = ["a.txt", "gone.txt", "nested", "../outside.txt"]
    manifest, _ = run(root, "--expect", json.dumps(asked), "--read-all")
    assert manifest.expected == {"a.txt": (6, sha(b"alpha\n")), "gone.txt": "missing",
                                 "nested": "not a regular file", "../outside.txt": "outside the volume"}


def test_a_file_that_cannot_be_read_is_named_with_its_reason(tmp_path, monkeypatch):
    """The tests run as root, whom file modes do not stop (chmod 000 reads fine), so an I/O
    error is simulated where the reader opens files: the same reader, run in this process."""
    root = write(tmp_path / "claim", FILES)
    real_open = open

    def failing_open(path, *args, **kwargs):
        if str(path).endswith("rows.csv"):
            raise OSError(errno.EIO, os.strerror(errno.EIO), str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(manifest_reader, "open", failing_open, raising=False)
    for read_all in (False, True):  # found reading the sample, or reading every byte (a drill)
        report = manifest_reader.read(str(root), 32, None, read_all, ["nested/deeper/rows.csv"])
        assert report["error_count"] == 1
        assert report["errors"] == [{"path": "nested/deeper/rows.csv", "error": os.strerror(errno.EIO)}]
        assert report["files"] == len(FILES)  # still counted: it exists, its content is what failed
        assert "nested/deeper/rows.csv" not in [e["path"] for e in report["sample"]]
        assert len(report["sample"]) == len(FILES) - 1
        assert report["expected"]["nested/deeper/rows.csv"] == {"error": os.strerror(errno.EIO)}


def test_a_file_without_read_permission_is_an_error_as_a_job_sees_it():
    """Jobs run the reader as a non-root user (SOTERIA_JOB_RUN_AS_USER): so does this test,
    through setpriv when the suite runs as root."""
    base = Path(tempfile.mkdtemp(prefix="soteria-reader-", dir="/tmp"))  # a path the other user can reach
    try:
        base.chmod(0o755)
        root = write(base / "claim", FILES)
        for path in [root, *root.rglob("*")]:
            path.chmod(0o755 if path.is_dir() else 0o644)
        (root / "a.txt").chmod(0)
        as_user = ["setpriv", "--reuid=65532", "--regid=65532", "--clear-groups"] if os.geteuid() == 0 else []
        python = shutil.which("python3", path="/usr/bin") or sys.executable  # the system's: any user may run it
        done = subprocess.run([*as_user, python, "-c", reader_source(), str(root), "--read-all"],
                              capture_output=True, text=True, timeout=60, check=True)
        manifest = parse_output(done.stdout)
        assert ("a.txt", os.strerror(errno.EACCES)) in manifest.errors
        assert manifest.files == len(FILES) and manifest.error_count == 1
    finally:
        shutil.rmtree(base)


def test_a_root_that_is_not_a_directory_fails_with_a_message(tmp_path):
    done = subprocess.run([sys.executable, "-c", reader_source(), str(tmp_path / "nothing")], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2 and "is not a directory" in done.stderr and done.stdout == ""
