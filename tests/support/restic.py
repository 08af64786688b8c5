"""Helpers for the restic driver's end-to-end tests: non-Longhorn PVCs with real files, the
directory the sandbox provisioned for a restored claim, and a tree comparison that sees symlinks."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from sandbox import seed
from sandbox.config import SandboxConfig
from tests.support.kube import kube
from tests.support.polling import wait_for

CLASS = "local-path"


def host_dir(cfg: SandboxConfig, namespace: str, pvc: str) -> Path:
    return cfg.local_volumes_dir / f"{namespace}-{pvc}"


def write_tree(root: Path, marker: str) -> None:
    """Files that are easy to get wrong: empty, a symlink, nested, spaces and non-ASCII in names."""
    (root / "nested" / "deeper" / "deepest").mkdir(parents=True, exist_ok=True)
    (root / "README.txt").write_text(f"restic round trip of {marker}\n")
    (root / "empty").write_bytes(b"")
    (root / "nested" / "deeper" / "deepest" / "rows.csv").write_text(
        "id,v\n" + "".join(f"{i},{i * i}\n" for i in range(2000)))
    (root / "with spaces and ünïcødé — 数据.txt").write_text(f"{marker}: ✓\n")
    (root / "blob.bin").write_bytes(os.urandom(256 * 1024))
    link = root / "link-to-readme"
    if not link.is_symlink():
        link.symlink_to("README.txt")


def local_pvc(cfg: SandboxConfig, namespace: str, pvc: str, marker: str | None = None, size: str = "1Gi") -> Path:
    """A bound PVC of class local-path (a hostPath PV: not Longhorn) holding `write_tree`'s files."""
    seed.ensure_basics(cfg, [namespace])
    pv, claim = seed.pv_and_pvc(cfg, namespace, pvc, size, CLASS)
    core = kube(cfg)
    core.create_persistent_volume(pv)
    core.create_namespaced_persistent_volume_claim(namespace, claim)
    root = Path(pv["spec"]["hostPath"]["path"])
    write_tree(root, marker or f"{namespace}/{pvc}")
    seed.wait_bound(cfg, [(namespace, pvc)])
    return root


def provision(cfg: SandboxConfig, namespace: str, pvc: str) -> Path:
    """The directory behind a claim Soteria creates, once the sandbox's local-path provisioner
    stand-in has given it a PV and the PV controller has bound the two."""
    core = kube(cfg)

    def bound_volume():
        claim = _find_claim(core, namespace, pvc)
        return claim and claim.status.phase == "Bound" and claim.spec.volume_name

    volume = wait_for(bound_volume, 60, what=f"claim {namespace}/{pvc} to be created and bound")
    return Path(core.read_persistent_volume(volume).spec.host_path.path)


def _find_claim(core, namespace: str, pvc: str):
    from kubernetes.client.exceptions import ApiException

    try:
        return core.read_namespaced_persistent_volume_claim(pvc, namespace)
    except ApiException as exc:
        if exc.status == 404:
            return None
        raise


def tree(root: Path) -> dict[str, tuple]:
    """Relative path -> what it is: a file's bytes, a symlink's target, or a directory."""
    found = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            info = path.lstat()
            rel = str(path.relative_to(root))
            if stat.S_ISLNK(info.st_mode):
                found[rel] = ("symlink", os.readlink(path))
            elif stat.S_ISDIR(info.st_mode):
                found[rel] = ("dir",)
            else:
                found[rel] = ("file", path.read_bytes())
    return found


# --- A stale lock, as a crashed Job leaves it ------------------------------------------------
# restic's repository format (its design document): a key file holds the master keys encrypted
# with scrypt-derived keys; every file is IV || AES-256-CTR ciphertext || Poly1305-AES MAC, and
# is stored under the SHA-256 of those bytes. A lock is such a file under locks/. restic counts
# a lock stale when it is older than 30 minutes (or, on the same host, its process is gone), so
# a lock dated two hours ago from another host is what a Job that crashed long ago leaves.

def _aes(mode: str, key: bytes, data: bytes, iv: bytes | None = None) -> bytes:
    import subprocess

    args = ["openssl", "enc", f"-aes-{len(key) * 8}-{mode}", "-K", key.hex(), "-nosalt"]
    args += ["-iv", iv.hex()] if iv is not None else ["-nopad"]
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def _poly1305_aes(k: bytes, r: bytes, nonce: bytes, message: bytes) -> bytes:
    s = int.from_bytes(_aes("ecb", k, nonce), "little")
    clamped = int.from_bytes(r, "little") & 0x0FFFFFFC0FFFFFFC0FFFFFFC0FFFFFFF
    prime, acc = (1 << 130) - 5, 0
    for i in range(0, len(message), 16):
        acc = (acc + int.from_bytes(message[i:i + 16] + b"\x01", "little")) * clamped % prime
    return ((acc + s) % (1 << 128)).to_bytes(16, "little")


def _open(keys: tuple[bytes, bytes, bytes], blob: bytes) -> bytes:
    encrypt, k, r = keys
    nonce, body, mac = blob[:16], blob[16:-16], blob[-16:]
    assert _poly1305_aes(k, r, nonce, body) == mac, "wrong restic password"
    return _aes("ctr", encrypt, body, nonce)


def _seal(keys: tuple[bytes, bytes, bytes], plain: bytes) -> bytes:
    encrypt, k, r = keys
    nonce = os.urandom(16)
    body = _aes("ctr", encrypt, plain, nonce)
    return nonce + body + _poly1305_aes(k, r, nonce, body)


def master_keys(key_file: bytes, password: str) -> tuple[bytes, bytes, bytes]:
    import base64
    import hashlib
    import json

    meta = json.loads(key_file)
    derived = hashlib.scrypt(password.encode(), salt=base64.b64decode(meta["salt"]), n=meta["N"], r=meta["r"],
                             p=meta["p"], dklen=64, maxmem=2 ** 31 - 1)
    master = json.loads(_open((derived[:32], derived[32:48], derived[48:]), base64.b64decode(meta["data"])))
    return (base64.b64decode(master["encrypt"]), base64.b64decode(master["mac"]["k"]),
            base64.b64decode(master["mac"]["r"]))


def stale_lock(keys: tuple[bytes, bytes, bytes], hours_ago: float = 2.0) -> tuple[str, bytes]:
    """(file name, bytes) of an exclusive lock taken `hours_ago` by a pod that is gone."""
    import hashlib
    import json
    from datetime import datetime, timedelta, timezone

    when = datetime.now(timezone.utc) - timedelta(hours=hours_ago)
    lock = {"time": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), "exclusive": True, "hostname": "soteria-backup-crashed",
            "username": "root", "pid": 4242, "uid": 0, "gid": 0}
    blob = _seal(keys, json.dumps(lock).encode())
    return hashlib.sha256(blob).hexdigest(), blob


def _s3(method: str, endpoint: str, path: str, query: str = "", body: bytes = b"") -> bytes:
    """One S3 request signed with AWS Signature Version 4 (the loopback endpoint's credentials)."""
    import hashlib
    import hmac
    import urllib.parse
    import urllib.request
    from datetime import datetime, timezone

    from sandbox import s3

    now = datetime.now(timezone.utc)
    stamp, day, region = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d"), "us-east-1"
    host = urllib.parse.urlsplit(endpoint).netloc
    payload = hashlib.sha256(body).hexdigest()
    quoted = urllib.parse.quote(path, safe="/-_.~")
    canonical_query = "&".join(sorted(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(v, safe='-_.~')}"
                                      for k, v in urllib.parse.parse_qsl(query, keep_blank_values=True)))
    headers = {"host": host, "x-amz-content-sha256": payload, "x-amz-date": stamp}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([method, quoted, canonical_query, *(f"{k}:{headers[k]}" for k in sorted(headers)), "",
                           signed, payload])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + s3.SECRET_ACCESS_KEY).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={s3.ACCESS_KEY_ID}/{scope}, SignedHeaders={signed}, "
                                f"Signature={signature}")
    url = f"{endpoint}{quoted}" + (f"?{canonical_query}" if canonical_query else "")
    request = urllib.request.Request(url, data=body if method == "PUT" else None, method=method,
                                     headers={"Content-Type": "application/octet-stream",
                                              **{k: v for k, v in headers.items() if k != "host"}})
    with urllib.request.urlopen(request, timeout=30) as response:
        return response.read()


def plant_stale_lock_s3(endpoint: str, bucket: str, prefix: str, password: str) -> str:
    """Write a stale lock into an S3 repository; returns its name."""
    import re

    listing = _s3("GET", endpoint, f"/{bucket}", f"list-type=2&prefix={prefix}/keys/").decode()
    [key_name] = re.findall(r"<Key>([^<]+)</Key>", listing)
    keys = master_keys(_s3("GET", endpoint, f"/{bucket}/{key_name}"), password)
    name, blob = stale_lock(keys)
    _s3("PUT", endpoint, f"/{bucket}/{prefix}/locks/{name}", body=blob)
    return name


def corrupt_data_packs(repository: str, env: dict[str, str]) -> list[str]:
    """Flip bytes inside every pack of an S3 repository that holds only file contents (data
    blobs), as bit rot would: snapshots and trees stay readable, the files' contents do not.
    `repository` is `s3:<endpoint>/<bucket>/<prefix>`, `env` restic's credentials. Returns the
    packs corrupted."""
    import json
    import subprocess
    import urllib.parse

    def restic(*args: str) -> str:
        return subprocess.run(["restic", "--no-cache", "-r", repository, *args], env={**os.environ, **env},
                              capture_output=True, text=True, check=True, timeout=120).stdout

    data_only = []
    for index in restic("list", "index").split():
        for pack in json.loads(restic("cat", "index", index))["packs"]:
            if {blob["type"] for blob in pack["blobs"]} == {"data"}:
                data_only.append(pack["id"])
    parts = urllib.parse.urlsplit(repository.removeprefix("s3:"))
    endpoint = f"{parts.scheme}://{parts.netloc}"
    bucket, _, prefix = parts.path.lstrip("/").partition("/")
    for pack in data_only:
        path = f"/{bucket}/{prefix}/data/{pack[:2]}/{pack}"
        blob = bytearray(_s3("GET", endpoint, path))
        for offset in range(16, len(blob) - 64, 97):  # inside the ciphertext of every blob
            blob[offset] ^= 0xFF
        _s3("PUT", endpoint, path, body=bytes(blob))
    return data_only
