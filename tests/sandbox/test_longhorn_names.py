"""Names in the Longhorn emulator as in Longhorn: a Snapshot CR takes any DNS-1123 subdomain
(dots, up to 253 characters; the API server checks it, the manager nothing more)."""

from __future__ import annotations

from tests.sandbox.test_longhorn_emulator import error_body
from tests.support.polling import wait_for


def test_a_snapshot_cr_takes_a_dotted_name_and_refuses_what_the_api_server_would(lh):
    lh.ready_volume("vol-names")
    dotted = "soteria-backup-ai-data.primary-2026-20260412-153000"
    assert lh.action("volumes", "vol-names", "snapshotCRCreate", {"name": dotted}).status_code == 200
    wait_for(lambda: lh.action("volumes", "vol-names", "snapshotCRGet", {"name": dotted}).json()["readyToUse"],
             what="the dotted snapshot ready")
    for bad, why in [("a" * 254, "must be no more than 253 characters"),
                     ("Data", "a lowercase RFC 1123 subdomain"), ("a..b", "a lowercase RFC 1123 subdomain")]:
        response = lh.action("volumes", "vol-names", "snapshotCRCreate", {"name": bad})
        body = error_body(response, 500, why)
        assert body["message"].startswith(f'failed to create snapshot CR: Snapshot.longhorn.io "{bad}" is invalid')
    names = [s["name"] for s in lh.action("volumes", "vol-names", "snapshotCRList", {}).json()["data"]]
    assert names == [dotted]
