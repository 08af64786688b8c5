"""Finding 8: a known identity costs no database write; only a change of groups does, and public
paths do no identity work at all (real gunicorn, the server's own SQLite file)."""

import sqlite3

from tests.support import cast
from tests.support.cast import PROXY
from tests.support.http import call


class Database:
    """The server's database as another connection sees it: data_version moves when anyone else commits."""

    def __init__(self, server):
        self.db = sqlite3.connect(f"file:{server.data_dir / 'soteria.sqlite3'}?mode=ro", uri=True)

    def version(self) -> int:
        return self.db.execute("pragma data_version").fetchone()[0]

    def users(self) -> set[str]:
        return {name for (name,) in self.db.execute("select username from auth_user")}


def test_repeated_requests_of_a_known_identity_write_nothing(secure_server):
    db = Database(secure_server)
    assert call(secure_server.url, "GET", "/v1/whoami", headers=cast.VIEWER, peer=PROXY).status == 200
    version = db.version()
    for _ in range(10):
        assert call(secure_server.url, "GET", "/v1/whoami", headers=cast.VIEWER, peer=PROXY).status == 200
    assert db.version() == version
    regrouped = (("X-Auth-Request-User", "dave"), ("X-Auth-Request-Groups", "viewers,ops"))
    assert call(secure_server.url, "GET", "/v1/whoami", headers=regrouped, peer=PROXY).json()["groups"] == [
        "viewers", "ops"]
    assert db.version() != version


def test_a_known_identity_is_served_while_another_process_holds_the_write_lock(secure_server):
    """The worker writing the queue, a policy run, another pod's request: none of them may stall readers."""
    assert call(secure_server.url, "GET", "/v1/whoami", headers=cast.SCOPED, peer=PROXY).status == 200
    writer = sqlite3.connect(str(secure_server.data_dir / "soteria.sqlite3"), timeout=1, isolation_level=None)
    writer.execute("begin immediate")
    try:
        reply = call(secure_server.url, "GET", "/v1/whoami", headers=cast.SCOPED, peer=PROXY, timeout=10)
        assert reply.status == 200 and reply.json()["user"] == "erin"
        assert call(secure_server.url, "GET", "/healthz", headers=cast.SCOPED, peer=PROXY, timeout=10).status == 200
    finally:
        writer.execute("rollback")
        writer.close()


def test_probes_with_identity_headers_do_no_identity_work(secure_server):
    db = Database(secure_server)
    probe = (("X-Auth-Request-User", "probe-user"), ("X-Auth-Request-Groups", "admin"))
    version = db.version()
    for path in ("/healthz", "/readyz", "/metrics"):
        call(secure_server.url, "GET", path, headers=probe, peer=PROXY)
    assert db.version() == version and "probe-user" not in db.users()
