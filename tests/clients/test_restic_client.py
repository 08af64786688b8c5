"""backups/clients/restic.py at its seam: a stand-in `restic` executable that records how it was
called and answers as restic 0.14 or 0.16 would."""

from __future__ import annotations

import json
import stat

import pytest

from backups.clients import restic
from soteria_site.core.errors import UpstreamError, UpstreamTimeout, UpstreamUnavailable
from soteria_site.core.metrics import UPSTREAM_REQUESTS

CREDS = restic.Credentials({"AWS_ACCESS_KEY_ID": "key", "AWS_SECRET_ACCESS_KEY": "secret",
                            "RESTIC_PASSWORD": "correct horse"})
SNAPSHOTS_014 = [{"time": "2026-04-12T15:30:00.123456789Z", "tree": "t", "paths": ["/data"], "hostname": "soteria",
                  "username": "root", "tags": ["soteria.io/namespace=ai", "soteria.io/pvc=llm-cache", "urgent"],
                  "id": "a" * 64, "short_id": "aaaaaaaa"}]


@pytest.fixture
def fake_restic(tmp_path, monkeypatch, settings):
    """Install a script as restic: it writes its arguments and environment to a file, prints
    `stdout`, `stderr` and exits `code` (set through the returned dict before a call)."""
    settings.SOTERIA_DATA_DIR = tmp_path / "data"
    record = tmp_path / "calls.jsonl"
    script = tmp_path / "restic"

    def write(answer):
        script.write_text(f"""#!/usr/bin/env python3
import json, os, sys, time
with open({str(record)!r}, "a") as out:
    out.write(json.dumps({{"args": sys.argv[1:], "env": dict(os.environ)}}) + "\\n")
time.sleep({answer["sleep"]})
sys.stdout.write({answer["stdout"]!r}); sys.stderr.write({answer["stderr"]!r})
sys.exit({answer["code"]})
""")
        script.chmod(script.stat().st_mode | stat.S_IEXEC)

    monkeypatch.setattr(restic, "BINARY", str(script))

    class Fake(dict):
        def set(self, **kwargs):
            self.update({"stdout": "", "stderr": "", "code": 0, "sleep": 0}, **kwargs)
            write(self)

        def calls(self):
            return [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []

    fake = Fake()
    fake.set()
    return fake


def _count(operation, outcome):
    return UPSTREAM_REQUESTS.labels("restic", operation, outcome)._value.get()


def test_snapshots_are_parsed_and_credentials_go_only_through_the_environment(fake_restic, settings):
    settings.SOTERIA_S3_REGION = "eu-west-1"
    fake_restic.set(stdout=json.dumps(SNAPSHOTS_014))
    before = _count("snapshots", "ok")
    [snap] = restic.snapshots("s3:http://s3/bucket/repo", CREDS, tags=["soteria.io/namespace=ai", "soteria.io/pvc=x"])
    assert snap.id == "a" * 64 and snap.short_id == "aaaaaaaa" and snap.paths == ("/data",)
    assert snap.time.isoformat() == "2026-04-12T15:30:00.123456+00:00"
    assert snap.tag_values() == {"soteria.io/namespace": "ai", "soteria.io/pvc": "llm-cache", "urgent": "true"}
    [call] = fake_restic.calls()
    assert call["args"] == ["snapshots", "--json", "--no-lock", "--tag", "soteria.io/namespace=ai,soteria.io/pvc=x"]
    assert not any("correct horse" in a or "secret" in a for a in call["args"])
    env = call["env"]
    assert env["RESTIC_PASSWORD"] == "correct horse" and env["RESTIC_REPOSITORY"] == "s3:http://s3/bucket/repo"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert _count("snapshots", "ok") == before + 1


def test_empty_answers_and_a_missing_repository_mean_no_snapshots(fake_restic):
    fake_restic.set(stdout="null\n")
    assert restic.snapshots("r", CREDS) == []
    fake_restic.set(code=1, stderr="Fatal: unable to open config file: Stat: The specified key does not exist.\n"
                                   "Is there a repository at the following location?\ns3:http://s3/b/r\n")
    assert restic.snapshots("r", CREDS) == []
    assert restic.repository_exists("r", CREDS) is False


def test_failures_become_soterias_errors_with_restics_words(fake_restic):
    fake_restic.set(code=1, stderr="Fatal: wrong password or no key found\n")
    with pytest.raises(UpstreamError, match="wrong password or no key found") as caught:
        restic.snapshots("r", CREDS)
    assert caught.value.status == 502 and caught.value.code == "restic_error"
    fake_restic.set(code=1, stderr="Fatal: dial tcp 10.0.0.1:9000: connect: connection refused\n")
    with pytest.raises(UpstreamUnavailable):
        restic.repository_exists("r", CREDS)
    # restic 0.14's words when it cannot reach S3 at all: not a missing repository.
    fake_restic.set(code=1, stderr='Fatal: unable to open config file: Stat: Get "http://127.0.0.1:9/b/?location=": '
                                   "dial tcp 127.0.0.1:9: connect: connection refused\n"
                                   "Is there a repository at the following location?\ns3:http://127.0.0.1:9/b/r\n")
    with pytest.raises(UpstreamUnavailable):
        restic.repository_exists("r", CREDS)
    fake_restic.set(code=0, stdout="this is not json")
    with pytest.raises(UpstreamError, match="not JSON"):
        restic.snapshots("r", CREDS)


def test_every_run_has_a_timeout(fake_restic):
    fake_restic.set(sleep=5)
    before = _count("snapshots", "timeout")
    with pytest.raises(UpstreamTimeout, match="within 0.5s"):
        restic.snapshots("r", CREDS, timeout=0.5)
    assert _count("snapshots", "timeout") == before + 1


def test_a_missing_binary_is_unavailable(monkeypatch, settings, tmp_path):
    settings.SOTERIA_DATA_DIR = tmp_path
    monkeypatch.setattr(restic, "BINARY", str(tmp_path / "no-restic-here"))
    with pytest.raises(UpstreamUnavailable, match="cannot run the restic binary"):
        restic.snapshots("r", CREDS)


def test_init_tolerates_a_repository_created_meanwhile(fake_restic):
    fake_restic.set(code=1, stderr="Fatal: create key in repository at s3:x failed: repository master key and "
                                   "config already initialized\n")
    restic.init("r", CREDS)
    assert fake_restic.calls()[-1]["args"] == ["init"]


# `restic backup --json` as the real binaries print it: 0.14 (the sandbox's) with a short id, 0.16
# with the full one; progress lines first, the summary last.
STATUS = '{"message_type":"status","percent_done":1,"total_files":3,"files_done":3,"total_bytes":21,' \
         '"bytes_done":21,"current_files":["/f2"]}'
SUMMARY_014 = ('{"message_type":"summary","files_new":3,"files_changed":0,"files_unmodified":0,"dirs_new":0,'
               '"dirs_changed":0,"dirs_unmodified":0,"data_blobs":3,"tree_blobs":1,"data_added":1050,'
               '"total_files_processed":3,"total_bytes_processed":21,"total_duration":0.218434492,'
               '"snapshot_id":"bd6f7d6d"}')
SUMMARY_016 = SUMMARY_014.replace('"bd6f7d6d"', '"' + "bd6f7d6d" * 8 + '"').replace('"files_new":3', '"files_new":1')
UNREADABLE_014 = ('{"message_type":"error","error":{"Op":"open","Path":"secret","Err":13},"during":"archival",'
                  '"item":"/data/secret"}')


def test_the_backup_summary_is_read_from_either_versions_json():
    summary = restic.parse_backup_summary("\n".join([STATUS, SUMMARY_014, ""]))
    assert summary == restic.BackupSummary(snapshot_id="bd6f7d6d", files_new=3, files_changed=0,
                                           files_unmodified=0, bytes_added=1050, files_processed=3,
                                           bytes_processed=21)
    later = restic.parse_backup_summary(f"{STATUS}\n{SUMMARY_016}\nWarning: at least one source file could not be read")
    assert later.snapshot_id == "bd6f7d6d" * 8 and later.files_new == 1
    # No summary: a log cut before it, a failed run, or text that only looks like JSON.
    for text in ("", STATUS, "Fatal: wrong password or no key found", "{not json", '{"message_type":"summary"}',
                 '["message_type"]'):
        assert restic.parse_backup_summary(text) is None


def test_json_lines_read_as_restic_would_say_them():
    assert restic.readable(UNREADABLE_014) == "error: open /data/secret: permission denied"
    assert restic.readable('{"message_type":"error","error":{"message":"lstat /data/x: no such file or directory"},'
                           '"during":"scan","item":"/data/x"}') == "error: lstat /data/x: no such file or directory"
    assert restic.readable(STATUS) == "" and restic.readable(SUMMARY_014) == ""
    assert restic.readable("  Fatal: unable to open repository  ") == "Fatal: unable to open repository"
    assert restic.readable('{"message_type":"error","error":{"Op":"read"},"item":"/data/y"}') == \
        'error: /data/y: {"Op":"read"}'
