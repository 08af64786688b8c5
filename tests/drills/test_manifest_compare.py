"""What a drill says when the restored copy differs from the backup's manifest, and the
reader's output as a Job prints it (backups/manifests.py, backups/manifest_reader.py)."""

from __future__ import annotations

import errno
import hashlib
import time
from dataclasses import replace
from datetime import datetime, timezone

import pytest

from backups.manifests import MAX_DIFFERENCES, Entry, Manifest, ManifestUnreadable, compare, from_json, parse_output
from tests.support.drills import run_reader, write_tree


def sha(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


A, B = b"alpha\n", b"bravo bravo\n"
SOURCE = Manifest(files=2, bytes=len(A) + len(B), digest="d",
                  sample=(Entry("a.txt", len(A), sha(A)), Entry("dir/b.txt", len(B), sha(B))))


def restored(expected: dict, *, files: int = 2, size: int = len(A) + len(B), **more) -> Manifest:
    return Manifest(files=files, bytes=size, digest="other", expected=expected, **more)


GOOD = {"a.txt": (len(A), sha(A)), "dir/b.txt": (len(B), sha(B))}


def test_an_identical_restore_has_no_differences():
    assert compare(SOURCE, restored(GOOD)) == []


def test_a_file_whose_content_changed_is_named():
    changed = b"bravo BRAVO\n"  # same size
    found = compare(SOURCE, restored({**GOOD, "dir/b.txt": (len(changed), sha(changed))}))
    assert found == [f"dir/b.txt: content differs (sha256 {sha(changed)[:12]} restored, {sha(B)[:12]} at backup)"]


def test_a_missing_file_is_named():
    found = compare(SOURCE, restored({**GOOD, "a.txt": "missing"}, files=1, size=len(B)))
    assert "a.txt: missing in the restore" in found
    assert "file count: 1 restored, 2 at backup" in found
    assert f"total size: {len(B)} bytes restored, {len(A) + len(B)} at backup" in found


def test_a_file_of_another_size_is_named():
    found = compare(SOURCE, restored({**GOOD, "a.txt": (3, sha(b"abc"))}, size=3 + len(B)))
    assert found[0] == f"a.txt: 3 bytes restored, {len(A)} at backup"


def test_a_sampled_file_the_verification_did_not_check_is_named():
    assert compare(SOURCE, restored({"a.txt": GOOD["a.txt"]})) == ["dir/b.txt: not checked in the restore"]


def test_unreadable_files_are_named_with_their_reason_and_the_unlisted_counted():
    found = compare(SOURCE, restored({**GOOD, "a.txt": "Input/output error"},
                                     errors=(("a.txt", "Input/output error"), ("c.bin", "Input/output error")),
                                     error_count=5))
    assert found == ["a.txt: unreadable in the restore (Input/output error)",
                     "c.bin: unreadable in the restore (Input/output error)",
                     "3 more unreadable files in the restore",
                     "a.txt: Input/output error (restore)"]


def test_count_and_bytes_mismatches_are_named_even_when_the_sample_agrees():
    found = compare(SOURCE, restored(GOOD, files=3, size=999))
    assert found == ["file count: 3 restored, 2 at backup", "total size: 999 bytes restored, 18 at backup"]


def test_files_changed_after_the_backup_widen_the_count_and_waive_the_bytes():
    source = Manifest(files=2, bytes=18, digest="d", sample=SOURCE.sample, changed_files=2, changed_bytes=50)
    assert compare(source, restored(GOOD, files=4, size=5000)) == []
    assert compare(source, restored(GOOD, files=2, size=1)) == []
    assert compare(source, restored(GOOD, files=5)) == ["file count: 5 restored, 2 to 4 at backup"]
    assert compare(source, restored(GOOD, files=1)) == ["file count: 1 restored, 2 to 4 at backup"]


def test_differences_stop_at_the_cap_and_say_how_many_more():
    sample = tuple(Entry(f"f{i:02}", 1, sha(b"x")) for i in range(20))
    source = Manifest(files=20, bytes=20, digest="d", sample=sample)
    found = compare(source, restored({f"f{i:02}": "missing" for i in range(20)}, files=0, size=0))
    # 20 missing files, the count and the size: 22 differences.
    assert len(found) == MAX_DIFFERENCES + 1
    assert found[:2] == ["f00: missing in the restore", "f01: missing in the restore"]
    assert found[-1] == f"and {22 - MAX_DIFFERENCES} more differences"


def test_a_long_path_is_shortened_in_what_is_named():
    long = "d/" * 150 + "f"
    source = Manifest(files=1, bytes=1, digest="d", sample=(Entry(long, 1, sha(b"x")),))
    [found] = compare(source, restored({long: "missing"}, files=1, size=1))
    assert found.startswith(long[:200] + "...: missing") and long not in found


# --- The reader, run as a Job runs it --------------------------------------------------------
FILES = {"a.txt": A, "dir/b.txt": B, "dir/deeper/c.bin": bytes(range(256)) * 10, "empty": b""}


def test_the_readers_output_parses_to_the_trees_counts_and_contents(tmp_path):
    root = write_tree(tmp_path / "claim", FILES)
    (root / "link").symlink_to(root / "a.txt")  # not followed, not counted
    found = parse_output("some noise on stderr\n" + run_reader(root, read_all=True, expect=["a.txt", "nope",
                                                                                           "../etc"]))
    assert found.files == 4 and found.bytes == sum(len(c) for c in FILES.values())
    assert {e.path: (e.size, e.sha256) for e in found.sample} == {p: (len(c), sha(c)) for p, c in FILES.items()}
    assert found.expected == {"a.txt": (len(A), sha(A)), "nope": "missing", "../etc": "outside the volume"}
    assert found.error_count == 0 and found.digest


def test_a_restore_read_by_the_reader_matches_its_source_and_a_changed_copy_does_not(tmp_path):
    source = parse_output(run_reader(write_tree(tmp_path / "source", FILES)))
    expect = [e.path for e in source.sample]
    same = parse_output(run_reader(write_tree(tmp_path / "same", FILES), read_all=True, expect=expect))
    assert compare(source, same) == []
    changed = parse_output(run_reader(write_tree(tmp_path / "changed", {**FILES, "dir/b.txt": b"bravo BRAVO\n"}),
                                      read_all=True, expect=expect))
    assert [d.split(":")[0] for d in compare(source, changed)] == ["dir/b.txt"]


def test_files_changed_at_or_after_the_backup_are_counted_apart_and_never_sampled(tmp_path):
    root = write_tree(tmp_path / "claim", FILES)
    total = sum(len(c) for c in FILES.values())
    before = parse_output(run_reader(root, since=datetime.fromtimestamp(time.time() + 3600, timezone.utc)))
    assert (before.files, before.bytes, before.changed_files, len(before.sample)) == (4, total, 0, 4)
    after = parse_output(run_reader(root, since=datetime.fromtimestamp(time.time() - 3600, timezone.utc)))
    assert (after.files, after.bytes, after.changed_files, after.changed_bytes) == (0, 0, 4, total)
    assert after.sample == ()


def test_a_file_the_reader_cannot_read_is_reported_and_named_by_compare(tmp_path, monkeypatch):
    from backups import manifest_reader

    root = write_tree(tmp_path / "claim", FILES)
    drain = manifest_reader.drain

    def failing(full):
        if full.endswith("dir/b.txt"):
            raise OSError(errno.EIO, "Input/output error", full)
        drain(full)

    monkeypatch.setattr(manifest_reader, "drain", failing)
    found = from_json(manifest_reader.read(str(root), 32, None, True, []))
    assert found.error_count == 1 and found.errors == (("dir/b.txt", "Input/output error"),)
    assert "dir/b.txt" not in {e.path for e in found.sample}
    assert compare(SOURCE, replace(found, expected=GOOD)) == [
        "dir/b.txt: unreadable in the restore (Input/output error)",
        "file count: 4 restored, 2 at backup", f"total size: {found.bytes} bytes restored, 18 at backup"]


@pytest.mark.parametrize("garbage", [
    "", "Error: permission denied\n", "{not json soteria-manifest/1\n",
    '{"format": "soteria-manifest/0", "files": 1, "bytes": 1}\n',
    '{"format": "soteria-manifest/1", "bytes": 1}\n',
    '{"format": "soteria-manifest/1", "files": "many", "bytes": 1}\n',
    '{"format": "soteria-manifest/1", "files": 1, "bytes": 1, "expected": {"a": 5}}\n',
    '{"format": "soteria-manifest/1", "files": 1, "bytes": 1, "sample": [{"path": "a"}]}\n',
])
def test_garbage_is_no_manifest(garbage):
    with pytest.raises(ManifestUnreadable):
        parse_output(garbage)


def test_the_last_manifest_line_wins_and_a_stored_manifest_reads_back():
    first = '{"format":"soteria-manifest/1","files":1,"bytes":1,"digest":"x"}'
    last = '{"format":"soteria-manifest/1","files":2,"bytes":5,"digest":"y","changed_files":1}'
    found = parse_output(f"{first}\n{last}\n")
    assert (found.files, found.bytes, found.changed_files) == (2, 5, 1)
    assert from_json(SOURCE.to_json()) == SOURCE
