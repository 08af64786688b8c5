"""Manifests: what a claim held, as count, bytes and a content digest of a sample of files.

A manifest is taken by a Job running backups/manifest_reader.py against a mounted claim:
at backup time from the source (cheap: metadata and the sample only), and by a restore
drill from the restored copy (every byte read). `compare` names every difference.
Pure: no upstream calls, so drivers and services both use it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cache
from pathlib import Path

from django.conf import settings

FORMAT = "soteria-manifest/1"
MAX_DIFFERENCES = 12  # a failed drill names at most this many entries, then "and N more"
_PATH_SHOWN = 200


@dataclass(frozen=True)
class Entry:
    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Manifest:
    files: int
    bytes: int
    digest: str
    sample: tuple[Entry, ...] = ()
    changed_files: int = 0
    changed_bytes: int = 0
    error_count: int = 0
    errors: tuple[tuple[str, str], ...] = ()
    # A drill's answers for the source's sample paths: path -> (size, sha256) or an error text.
    expected: dict[str, tuple[int, str] | str] = field(default_factory=dict)
    since: float | None = None
    seconds: float = 0.0

    def to_json(self) -> dict:
        """What Soteria stores (the drill's `expected` answers are not kept)."""
        return {"format": FORMAT, "files": self.files, "bytes": self.bytes, "digest": self.digest,
                "sample": [{"path": e.path, "size": e.size, "sha256": e.sha256} for e in self.sample],
                "changed_files": self.changed_files, "changed_bytes": self.changed_bytes,
                "error_count": self.error_count, "errors": [{"path": p, "error": r} for p, r in self.errors],
                "since": self.since, "seconds": self.seconds}


class ManifestUnreadable(ValueError):
    """A Job's output holds no manifest (cut, or the program failed)."""


def from_json(data: dict) -> Manifest:
    """A manifest from its JSON form (a reader's output line, or what Soteria stored)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ManifestUnreadable(f"not a {FORMAT} manifest")
    try:
        expected: dict[str, tuple[int, str] | str] = {}
        for path, answer in (data.get("expected") or {}).items():
            expected[str(path)] = (str(answer["error"]) if "error" in answer
                                   else (int(answer["size"]), str(answer["sha256"])))
        return Manifest(
            files=int(data["files"]), bytes=int(data["bytes"]), digest=str(data.get("digest", "")),
            sample=tuple(Entry(str(e["path"]), int(e["size"]), str(e["sha256"])) for e in data.get("sample") or ()),
            changed_files=int(data.get("changed_files") or 0), changed_bytes=int(data.get("changed_bytes") or 0),
            error_count=int(data.get("error_count") or 0),
            errors=tuple((str(e["path"]), str(e["error"])) for e in data.get("errors") or ()),
            expected=expected, since=data.get("since"), seconds=float(data.get("seconds") or 0))
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ManifestUnreadable(f"malformed manifest: {exc}") from None


def parse_output(text: str) -> Manifest:
    """The manifest in a reader's log: its last line that is a manifest."""
    for line in reversed((text or "").strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and FORMAT in line:
            try:
                return from_json(json.loads(line))
            except ValueError as exc:
                raise ManifestUnreadable(f"the manifest line is not JSON: {exc}") from None
    raise ManifestUnreadable("the Job's log holds no manifest line")


@cache
def reader_source() -> str:
    return (Path(__file__).with_name("manifest_reader.py")).read_text(encoding="utf-8")


def command(root: str, *, since: datetime | None = None, read_all: bool = False,
            expect: list[str] | None = None) -> list[str]:
    """The container command that prints the manifest of the claim mounted at `root`."""
    cmd = ["python3", "-c", reader_source(), root, "--sample", str(settings.SOTERIA_DRILL_SAMPLE_FILES)]
    if since is not None:
        cmd += ["--since", f"{since.timestamp():.3f}"]
    if read_all:
        cmd.append("--read-all")
    if expect:
        cmd += ["--expect", json.dumps(expect, separators=(",", ":"))]
    return cmd


def _shown(path: str) -> str:
    return path if len(path) <= _PATH_SHOWN else path[:_PATH_SHOWN] + "..."


def compare(source: Manifest, restored: Manifest) -> list[str]:
    """Every way the restored copy differs from the source as recorded at backup time, each
    naming its entry; [] when they agree. Files changed after the backup's point in time were
    left out of the source's manifest, so its count may be short by at most that many and its
    bytes are then not comparable."""
    found: list[str] = []
    for path, reason in restored.errors:
        found.append(f"{_shown(path)}: unreadable in the restore ({reason})")
    if restored.error_count > len(restored.errors):
        found.append(f"{restored.error_count - len(restored.errors)} more unreadable files in the restore")
    for entry in source.sample:
        answer = restored.expected.get(entry.path)
        name = _shown(entry.path)
        if answer is None:
            found.append(f"{name}: not checked in the restore")
        elif isinstance(answer, str):
            found.append(f"{name}: {answer} in the restore" if answer == "missing"
                         else f"{name}: {answer} (restore)")
        elif answer[0] != entry.size:
            found.append(f"{name}: {answer[0]} bytes restored, {entry.size} at backup")
        elif answer[1] != entry.sha256:
            found.append(f"{name}: content differs (sha256 {answer[1][:12]} restored, {entry.sha256[:12]} at backup)")
    low, high = source.files, source.files + source.changed_files
    if not low <= restored.files <= high:
        expected = f"{low}" if low == high else f"{low} to {high}"
        found.append(f"file count: {restored.files} restored, {expected} at backup")
    if source.changed_files == 0 and restored.bytes != source.bytes:
        found.append(f"total size: {restored.bytes} bytes restored, {source.bytes} at backup")
    if len(found) > MAX_DIFFERENCES:
        found = found[:MAX_DIFFERENCES] + [f"and {len(found) - MAX_DIFFERENCES} more differences"]
    return found


def epoch(value: float | None) -> datetime | None:
    return datetime.fromtimestamp(value, timezone.utc) if value is not None else None
