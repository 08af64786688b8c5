"""Loopback ports for the servers the tests start.

Every session's fixed ports are offsets from SOTERIA_TEST_PORT_BASE (27440 by
default): base+0..9 the session's sandbox (the `sandbox` fixture), base+10..19 the
Longhorn emulator's tests, base+20..29 the kubelet stand-in's tests,
base+30..39 the sandbox lifecycle test, base+3000.. the RBAC sandbox.
Servers that need no fixed port take a free one (`free_port`).
"""

from __future__ import annotations

import os
import socket

TEST_PORT_BASE = int(os.environ.get("SOTERIA_TEST_PORT_BASE", "27440"))
# A port nothing listens on (discard); unit tests that forget a fake fail fast.
CLOSED_URL = "http://127.0.0.1:9"


def free_port() -> int:
    """A loopback port free right now (the kernel's pick)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_free(port: int) -> bool:
    """Whether a listener could bind 127.0.0.1:port now.

    Another program on the machine may hold the port for a moment; starting a
    server then fails.
    """
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class PortReservation:
    """Holds ports with bound (not listening) sockets until a server needs them.

    Ports may be taken by other programs on the machine: any client socket on
    the machine (another test cluster's long-lived connections, say) may be
    given one and keep it, and our server then cannot bind. A port someone has
    bound is never handed out to client sockets, so the tests hold theirs from
    collection time on and release each one just before starting its server.
    """

    def __init__(self, ports):
        self._held: dict[int, socket.socket] = {}
        for port in ports:
            self.hold(port)

    def hold(self, port: int) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # despite TIME_WAIT leftovers
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return
        self._held[port] = sock

    def release(self, *ports: int) -> None:
        for port in ports:
            sock = self._held.pop(port, None)
            if sock is not None:
                sock.close()
