"""What a container runs: its command line (as its image would run it) and its environment.

Images are never pulled. A container runs `command` + `args` as given; without
a `command`, the stand-in plays a few known images: a restic image runs
`restic ARGS` (its entrypoint), a shell image (busybox, alpine, debian, ...)
runs ARGS, or `sh` when there are none. Anything else cannot be played.

Environment values come from the Kubernetes API as the kubelet resolves them:
`envFrom` first, then `env` (which wins), with `$(VAR)` references expanded.
"""

from __future__ import annotations

import base64
import re

from .api import Api

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
POD_IP = "127.0.0.1"

# Image name fragment -> (entrypoint, default cmd), checked in order.
KNOWN_IMAGES = (
    ("restic", (["restic"], [])),
    *((name, ([], ["sh"])) for name in ("busybox", "alpine", "debian", "ubuntu", "bash")),
)
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


class PodNotReady(Exception):
    """The pod cannot start yet (missing Secret, unbound claim...); the kubelet retries."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


class PodUnrunnable(Exception):
    """The stand-in can never run this pod; it fails with this reason."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def image_name(image: str) -> str:
    """`registry:5000/restic/restic:0.16.4@sha256:...` -> `restic/restic`."""
    image = image.split("@", 1)[0]
    repo, _, tag = image.rpartition(":")
    if repo and "/" not in tag:
        image = repo
    first, _, rest = image.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        image = rest
    return image


def command_line(container: dict, env: dict[str, str]) -> list[str]:
    """argv of the container's process, with $(VAR) references expanded."""
    command, args = container.get("command") or [], container.get("args") or []
    if not command:
        name = image_name(container.get("image", ""))
        played = next((plays for fragment, plays in KNOWN_IMAGES if fragment in name), None)
        if played is None:
            raise PodUnrunnable(
                "UnplayableImage",
                f"container {container['name']!r}: the sandbox kubelet does not pull images and cannot play "
                f"image {container.get('image')!r} without a `command` (it plays restic and shell images)")
        entrypoint, default_cmd = played
        command, args = entrypoint, args or default_cmd
    argv = [expand(part, env) for part in [*command, *args]]
    if not argv:
        raise PodUnrunnable("UnplayableImage", f"container {container['name']!r} has nothing to run")
    return argv


def expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes' $(VAR) expansion: known names are replaced, $$ escapes, the rest stays."""
    out, i = [], 0
    while i < len(text):
        if text.startswith("$$", i):
            out.append("$")
            i += 2
        elif text.startswith("$(", i) and (end := text.find(")", i + 2)) != -1:
            name = text[i + 2:end]
            out.append(env[name] if name in env else text[i:end + 1])
            i = end + 1
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def container_env(api: Api, pod: dict, container: dict) -> dict[str, str]:
    """The container's environment, or PodNotReady(CreateContainerConfigError) if a source is missing."""
    namespace = pod["metadata"]["namespace"]
    env = {"PATH": DEFAULT_PATH, "HOSTNAME": pod["spec"].get("hostname") or pod["metadata"]["name"],
           "HOME": "/root"}
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for key, value in _env_source(api, namespace, source).items():
            if ENV_NAME.match(prefix + key):  # the kubelet skips invalid names too
                env[prefix + key] = value
    for var in container.get("env") or []:
        if "valueFrom" in var:
            value = _value_from(api, pod, var["valueFrom"])
            if value is None:
                continue  # an optional reference to something missing
            env[var["name"]] = value
        else:
            env[var["name"]] = expand(var.get("value", ""), env)
    return env


def _env_source(api: Api, namespace: str, source: dict) -> dict[str, str]:
    if "secretRef" in source:
        ref, kind = source["secretRef"], "secret"
    elif "configMapRef" in source:
        ref, kind = source["configMapRef"], "configmap"
    else:
        return {}
    data = _data(api, namespace, kind, ref["name"])
    if data is None:
        if ref.get("optional"):
            return {}
        raise PodNotReady("CreateContainerConfigError", f'{kind} "{ref["name"]}" not found')
    return data


def _value_from(api: Api, pod: dict, source: dict) -> str | None:
    namespace = pod["metadata"]["namespace"]
    if "fieldRef" in source:
        return field_value(pod, source["fieldRef"]["fieldPath"])
    for field, kind, label in (("secretKeyRef", "secret", "Secret"), ("configMapKeyRef", "configmap", "ConfigMap")):
        if field in source:
            ref = source[field]
            data = _data(api, namespace, kind, ref["name"])
            if data is None:
                if ref.get("optional"):
                    return None
                raise PodNotReady("CreateContainerConfigError", f'{kind} "{ref["name"]}" not found')
            if ref["key"] not in data:
                if ref.get("optional"):
                    return None
                raise PodNotReady("CreateContainerConfigError",
                                  f"couldn't find key {ref['key']} in {label} {namespace}/{ref['name']}")
            return data[ref["key"]]
    raise PodUnrunnable("UnsupportedEnvSource", f"the sandbox kubelet does not resolve {sorted(source)} env sources")


def _data(api: Api, namespace: str, kind: str, name: str) -> dict[str, str] | None:
    """A Secret's or ConfigMap's keys as text, or None if it does not exist."""
    if kind == "secret":
        obj = api.secret(namespace, name)
        if obj is None:
            return None
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (obj.get("data") or {}).items()}
    obj = api.config_map(namespace, name)
    return None if obj is None else dict(obj.get("data") or {})


def field_value(pod: dict, path: str) -> str:
    """The downward API's fieldRef values a kubelet supports for env."""
    meta, spec = pod["metadata"], pod["spec"]
    match = re.fullmatch(r"metadata\.(labels|annotations)\['(.+)'\]", path)
    if match:
        return (meta.get(match.group(1)) or {}).get(match.group(2), "")
    values = {
        "metadata.name": meta["name"], "metadata.namespace": meta["namespace"], "metadata.uid": meta["uid"],
        "spec.nodeName": spec.get("nodeName", ""), "spec.serviceAccountName": spec.get("serviceAccountName", ""),
        "status.hostIP": POD_IP, "status.podIP": POD_IP, "status.podIPs": POD_IP,
    }
    if path not in values:
        raise PodUnrunnable("UnsupportedEnvSource", f"unsupported fieldRef {path!r}")
    return values[path]
