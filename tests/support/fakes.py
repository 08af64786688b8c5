"""Small in-process HTTP fakes for unit tests at the client seams."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

Handler = Callable[[Request], Response]


def json_response(body, status: int = 200) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


@dataclass
class FakeServer:
    """Answers (method, path) with a handler; records every request it saw."""

    routes: dict[tuple[str, str], Handler] = field(default_factory=dict)
    calls: list[tuple[str, str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)

    def route(self, method: str, path: str, handler: Handler | dict | list) -> None:
        if not callable(handler):
            body = handler
            handler = lambda request: json_response(body)  # noqa: E731
        self.routes[(method, path)] = handler

    def _app(self, environ, start_response):
        request = Request(environ)
        self.calls.append((request.method, request.path, request.query_string.decode()))
        handler = self.routes.get((request.method, request.path))
        response = handler(request) if handler else Response("404 page not found\n", status=404,
                                                             content_type="text/plain")
        return response(environ, start_response)

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._thread.join(timeout=5)
