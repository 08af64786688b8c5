"""The Rancher-style envelope the manager wraps around everything it returns.

Resources carry id, type, links.self and an actions map; collections carry
type "collection", resourceType, links.self and data. Links are built from the
request's own URL (Host, or X-API-request-url / X-Forwarded-* headers). JSON is
written compactly with sorted keys and a trailing newline, like Go's encoder
writing a map. Error bodies are written after the status line, so (as with the
real manager) they go out as text/plain without X-API-Schemas.
"""

from __future__ import annotations

import json
from http import HTTPStatus

from werkzeug.wrappers import Request, Response

JSON_TYPE = "application/json"
SNIFFED_TEXT = "text/plain; charset=utf-8"

# Resource type -> the lower-cased plural used in its links.
PLURALS = {
    "volume": "volumes", "backupVolume": "backupvolumes", "backup": "backups",
    "backupTarget": "backuptargets", "setting": "settings", "snapshot": "snapshots",
    "snapshotCR": "snapshotcrs", "apiVersion": "apiversions", "schema": "schemas",
}


class ApiError(Exception):
    """A handler failure: 500 unless the cause is a Kubernetes-style NotFound."""

    def __init__(self, message: str, status: int = 500):
        super().__init__(message)
        self.message = message
        self.status = status

    def wrap(self, prefix: str) -> ApiError:
        return ApiError(f"{prefix}: {self.message}", self.status)


def not_found(resource: str, name: str) -> ApiError:
    """A Kubernetes NotFound error, e.g. `volume.longhorn.io "x" not found` (404)."""
    return ApiError(f'{resource} "{name}" not found', 404)


def dumps(payload) -> str:
    return json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Ctx:
    """Where links point: the base URL and the request URL without its query."""

    def __init__(self, request: Request):
        path = request.path
        override = request.headers.get("X-API-request-url", "").split(",")[0].strip()
        if override:
            url = override.split("?", 1)[0]
        else:
            url = self._forwarded_url(request) or f"http://{request.host}{path}"
        index = url.rfind(path)
        self.request_url = url
        self.base = url[:index] if index >= 0 else "/".join(url.split("/", 3)[:3])
        self.version = path.split("/")[1] if len(path) > 1 else ""

    @staticmethod
    def _forwarded_url(request: Request) -> str:
        def first(name: str) -> str:
            return request.headers.get(name, "").split(",")[0].strip()

        proto = first("X-Forwarded-Proto")
        if not proto:
            return ""
        host = first("X-Forwarded-Host") or request.host
        port = first("X-Forwarded-Port")
        if port in ("80", "443"):
            port = ""
        if port and ":" in host and not (host.startswith("[") and "]:" not in host):
            host = host[:host.rfind(":")]
        return f"{proto}://{host}{':' + port if port else ''}{request.path}"

    def link(self, resource_type: str, resource_id: str = "") -> str:
        url = f"{self.base}/{self.version or 'v1'}/{PLURALS.get(resource_type, resource_type.lower())}"
        return f"{url}/{resource_id}" if resource_id else url

    def resource(self, resource_type: str, resource_id: str, fields: dict, actions=()) -> dict:
        self_link = self.link(resource_type, resource_id)
        return {
            **fields,
            "id": resource_id,
            "type": resource_type,
            "links": {"self": self_link},
            "actions": {name: f"{self_link}?action={name}" for name in actions},
        }

    def collection(self, resource_type: str, data: list, create: bool = False) -> dict:
        body = {"type": "collection", "resourceType": resource_type,
                "links": {"self": self.request_url}, "data": data}
        if create:
            body["createTypes"] = {resource_type: self.link(resource_type)}
        return body

    def schemas_url(self) -> str:
        return self.link("schema")


def json_response(ctx: Ctx, payload, status: int = 200) -> Response:
    text = payload if isinstance(payload, str) else dumps(payload)
    return Response(text + "\n", status=status,
                    headers={"Content-Type": JSON_TYPE, "X-API-Schemas": ctx.schemas_url()})


def error_response(ctx: Ctx, status: int, message: str) -> Response:
    body = {
        "type": "error", "status": status, "code": HTTPStatus(status).phrase, "message": message,
        "detail": "", "links": {"self": ctx.request_url}, "actions": {},
    }
    return Response(dumps(body) + "\n", status=status, headers={"Content-Type": SNIFFED_TEXT})


def empty_response(status: int = 200) -> Response:
    response = Response(b"", status=status)
    del response.headers["Content-Type"]
    return response


def text_response(status: int, text: str) -> Response:
    return Response(text, status=status,
                    headers={"Content-Type": SNIFFED_TEXT, "X-Content-Type-Options": "nosniff"})
