"""Comparing a restore's manifest with its source's at backup time: every difference names its file."""

from __future__ import annotations

from backups.manifests import MAX_DIFFERENCES, Entry, Manifest, compare

A, B, C = "a" * 64, "b" * 64, "c" * 64


def source(**changes) -> Manifest:
    fields = {"files": 10, "bytes": 1000, "digest": "d",
              "sample": (Entry("kept.txt", 5, A), Entry("docs/report.pdf", 300, B), Entry("gone.txt", 7, C))}
    return Manifest(**{**fields, **changes})


def restored(expected, **changes) -> Manifest:
    return Manifest(**{"files": 10, "bytes": 1000, "digest": "x", "expected": expected, **changes})


GOOD = {"kept.txt": (5, A), "docs/report.pdf": (300, B), "gone.txt": (7, C)}


def test_a_faithful_restore_has_no_difference():
    assert compare(source(), restored(GOOD)) == []


def test_each_sampled_file_that_differs_is_named_with_how():
    answers = {"kept.txt": (5, "f" * 64), "docs/report.pdf": (299, B), "gone.txt": "missing"}
    assert compare(source(), restored(answers)) == [
        f"kept.txt: content differs (sha256 {'f' * 12} restored, {A[:12]} at backup)",
        "docs/report.pdf: 299 bytes restored, 300 at backup",
        "gone.txt: missing in the restore",
    ]


def test_unreadable_restored_files_and_unchecked_samples_are_named():
    answers = {"kept.txt": (5, A), "docs/report.pdf": "Input/output error"}
    found = compare(source(), restored(answers, errors=(("docs/report.pdf", "Input/output error"),), error_count=3))
    assert found == ["docs/report.pdf: unreadable in the restore (Input/output error)",
                     "2 more unreadable files in the restore",
                     "docs/report.pdf: Input/output error (restore)",
                     "gone.txt: not checked in the restore"]


def test_counts_allow_for_the_files_changed_after_the_point_in_time():
    hot = source(changed_files=2, changed_bytes=50)
    assert compare(hot, restored(GOOD, files=12, bytes=1234)) == []  # bytes are not comparable then
    assert compare(hot, restored(GOOD, files=13)) == ["file count: 13 restored, 10 to 12 at backup"]
    assert compare(source(), restored(GOOD, files=9, bytes=990)) == [
        "file count: 9 restored, 10 at backup", "total size: 990 bytes restored, 1000 at backup"]


def test_a_long_list_of_differences_is_cut_and_counted():
    sample = tuple(Entry(f"f{i}", 1, A) for i in range(30))
    found = compare(source(sample=sample), restored({}))
    assert len(found) == MAX_DIFFERENCES + 1 and found[-1] == f"and {30 - MAX_DIFFERENCES} more differences"
    assert found[0] == "f0: not checked in the restore"
