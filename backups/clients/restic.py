"""restic's command line, run by Soteria's own process.

The inventory lists the repository's snapshots once (`restic snapshots --json`)
and a backup makes sure the repository exists (`cat config`, then `init` only
when there is none). Every run has an explicit timeout; credentials reach
restic through its environment only (never its arguments, never a log line);
failures become Soteria's errors and every run is counted in
soteria_upstream_requests_total{system="restic"}.

Output is parsed defensively: restic 0.14 (Debian, the sandbox) and 0.16 (the
default Job image) differ in small ways (0.14 lacks `program_version`, prints
short ids in `backup --json`).
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings

from soteria_site.core.errors import SoteriaError, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from soteria_site.core.metrics import UPSTREAM_REQUESTS
from soteria_site.core.timeparse import parse_time

from ..types import BackupSummary

log = logging.getLogger(__name__)
SYSTEM = "restic"
BINARY = "restic"
# The keys the restic Secret must hold (the contract's Secrets section).
CREDENTIAL_KEYS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "RESTIC_PASSWORD")
# What restic says when there is no repository at the location (0.14 and 0.16; 0.17 also exits 10).
_NO_REPOSITORY = ("unable to open config file", "Is there a repository at the following location?")
_UNREACHABLE = ("connection refused", "no such host", "dial tcp", "i/o timeout", "network is unreachable")


@dataclass(frozen=True)
class Credentials:
    """What restic needs besides the repository, from the restic Secret."""

    values: dict[str, str] = field(repr=False)  # never printed

    def env(self) -> dict[str, str]:
        return dict(self.values)


@dataclass(frozen=True)
class Snapshot:
    id: str
    short_id: str
    time: datetime | None
    hostname: str
    tags: tuple[str, ...]
    paths: tuple[str, ...]

    def tag_values(self) -> dict[str, str]:
        """Tags of the form key=value as a dict (bare tags map to "true")."""
        values = {}
        for tag in self.tags:
            key, sep, value = tag.partition("=")
            values[key] = value if sep else "true"
        return values


def _environment(repository: str, credentials: Credentials) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"), "RESTIC_REPOSITORY": repository,
           "RESTIC_CACHE_DIR": str(settings.SOTERIA_DATA_DIR / "restic-cache"),
           "HOME": str(settings.SOTERIA_DATA_DIR), "TMPDIR": str(settings.SOTERIA_DATA_DIR / "restic-tmp")}
    if settings.SOTERIA_S3_REGION:
        env["AWS_DEFAULT_REGION"] = settings.SOTERIA_S3_REGION
    env.update(credentials.env())
    return env


def _last_lines(text: str, count: int = 3) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return " ".join(lines[-count:])


def run(operation: str, args: list[str], repository: str, credentials: Credentials,
        timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run `restic ARGS` against the repository; the finished process when it exits 0.
    Raises UpstreamTimeout, UpstreamUnavailable (no binary, repository unreachable) or
    UpstreamError (any other failure, with restic's own words)."""
    timeout = timeout if timeout is not None else settings.SOTERIA_RESTIC_TIMEOUT_SECONDS
    env = _environment(repository, credentials)
    os.makedirs(env["TMPDIR"], exist_ok=True)
    try:
        done = subprocess.run([BINARY, *args], env=env, capture_output=True, timeout=timeout, text=True,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "timeout").inc()
        raise UpstreamTimeout(SYSTEM, f"restic {args[0]} did not finish within {timeout:g}s") from None
    except OSError as exc:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "unreachable").inc()
        raise UpstreamUnavailable(SYSTEM, f"cannot run the restic binary: {exc.strerror or exc}") from None
    if done.returncode == 0:
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "ok").inc()
        return done
    said = _last_lines(done.stderr) or _last_lines(done.stdout) or f"exit code {done.returncode}"
    # Unreachable first: restic says "unable to open config file ... connection refused. Is there
    # a repository at the following location?" when it cannot reach the storage at all.
    if any(marker in done.stderr.lower() for marker in _UNREACHABLE):
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "unreachable").inc()
        raise UpstreamUnavailable(SYSTEM, f"restic {args[0]} could not reach the repository: {said}")
    if any(marker in done.stderr for marker in _NO_REPOSITORY):
        UPSTREAM_REQUESTS.labels(SYSTEM, operation, "not_found").inc()
        raise RepositoryMissing(f"there is no restic repository at {repository}: {said}")
    UPSTREAM_REQUESTS.labels(SYSTEM, operation, "error").inc()
    raise UpstreamError(SYSTEM, f"restic {args[0]} failed: {said}", exit_code=done.returncode)


class RepositoryMissing(UpstreamError):
    status = 404

    def __init__(self, detail: str) -> None:
        super().__init__(SYSTEM, detail)
        self.code = "restic_repository_missing"


def parse_snapshots(text: str) -> list[Snapshot]:
    """`restic snapshots --json` (a JSON list; `null` when empty in some versions)."""
    try:
        data = json.loads(text or "[]") or []
    except ValueError:
        raise UpstreamError(SYSTEM, "restic snapshots --json printed something that is not JSON") from None
    if not isinstance(data, list):
        raise UpstreamError(SYSTEM, "restic snapshots --json printed JSON that is not a list")
    snapshots = []
    for item in data:
        if not isinstance(item, dict) or not item.get("id"):
            continue
        full = str(item["id"])
        snapshots.append(Snapshot(id=full, short_id=str(item.get("short_id") or full[:8]),
                                  time=parse_time(item.get("time")), hostname=str(item.get("hostname") or ""),
                                  tags=tuple(str(t) for t in item.get("tags") or ()),
                                  paths=tuple(str(p) for p in item.get("paths") or ())))
    return snapshots


def parse_backup_summary(text: str) -> BackupSummary | None:
    """The last `"message_type": "summary"` line of `restic backup --json`'s output (0.14 and
    0.16 print the same fields; 0.14's snapshot id is short), or None when there is none."""
    for line in reversed((text or "").splitlines()):
        item = _json_line(line)
        if item is None or item.get("message_type") != "summary" or not item.get("snapshot_id"):
            continue
        try:
            return BackupSummary(
                snapshot_id=str(item["snapshot_id"]), files_new=int(item.get("files_new") or 0),
                files_changed=int(item.get("files_changed") or 0),
                files_unmodified=int(item.get("files_unmodified") or 0),
                bytes_added=int(item.get("data_added") or 0),
                files_processed=int(item.get("total_files_processed") or 0),
                bytes_processed=int(item.get("total_bytes_processed") or 0))
        except (TypeError, ValueError):
            return None
    return None


def readable(line: str) -> str:
    """One line of restic's output as a person reads it: `backup --json` prints its progress and
    summary as JSON (dropped here: "") and each file it could not read as a JSON error, which
    becomes restic's usual `error: open /data/x: permission denied`. Other lines (restic's
    `Fatal: ...` and warnings stay text with --json) are kept as they are."""
    item = _json_line(line)
    if item is None:
        return line.strip()
    if item.get("message_type") != "error":
        return ""
    return f"error: {_error_words(item.get('error'), str(item.get('item') or ''))}"


def _error_words(error, item: str) -> str:
    """restic 0.14 and 0.16 marshal Go's error value ({"Op", "Path", "Err": errno} for a file);
    0.17 prints {"message"}; anything else is shown as restic wrote it."""
    if isinstance(error, str):
        return error
    if isinstance(error, dict):
        if error.get("message"):
            return str(error["message"])
        if error.get("Op") and isinstance(error.get("Err"), int):
            return f"{error['Op']} {item or error.get('Path', '')}: {os.strerror(error['Err']).lower()}"
    return f"{item}: {json.dumps(error, separators=(',', ':'))}" if item else json.dumps(error)


def _json_line(line: str) -> dict | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        item = json.loads(line)
    except ValueError:
        return None
    return item if isinstance(item, dict) else None


def snapshots(repository: str, credentials: Credentials, tags: list[str] | None = None,
              timeout: float | None = None) -> list[Snapshot]:
    """Every snapshot of the repository (with `tags`: those carrying all of them), in one run.
    A repository that does not exist yet has no snapshots."""
    args = ["snapshots", "--json", "--no-lock"]
    if tags:
        args += ["--tag", ",".join(tags)]
    try:
        done = run("snapshots", args, repository, credentials, timeout)
    except RepositoryMissing:
        return []
    return parse_snapshots(done.stdout)


def repository_exists(repository: str, credentials: Credentials, timeout: float | None = None) -> bool:
    try:
        run("cat-config", ["cat", "config", "--no-lock"], repository, credentials, timeout)
    except RepositoryMissing:
        return False
    return True


def init(repository: str, credentials: Credentials, timeout: float | None = None) -> None:
    """Create the repository. Another process creating it at the same time is not an error."""
    try:
        run("init", ["init"], repository, credentials, timeout)
    except SoteriaError as exc:
        if "already" in exc.detail and ("exists" in exc.detail or "initialized" in exc.detail):
            return
        raise


def forget(repository: str, credentials: Credentials, snapshot_ids: list[str], timeout: float | None = None) -> None:
    """Forget these snapshots (their data goes at the repository's next `prune`)."""
    run("forget", ["forget", *snapshot_ids], repository, credentials, timeout)
