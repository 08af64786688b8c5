"""The real Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager.

Binaries come from the cache that build-kube.sh fills (built once per machine);
everything else (certificates, tokens, etcd data, the kubeconfig) lives in the
sandbox's state directory and is thrown away by `down`.
"""

from __future__ import annotations

import secrets
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

from . import procs
from .config import HOST, SandboxConfig

HERE = Path(__file__).resolve().parent

# Static tokens: the admin (system:masters) drives the sandbox and the tests;
# "soteria" is an ordinary user that, with --rbac, has only what deploy/ grants.
TOKEN_USERS = {"admin": "system:masters", "soteria": ""}

# With --rbac, the apiserver writes one audit event per request of user "soteria" (at
# Metadata level: who, verb, resource, name, namespace, status, the RBAC decision), so a
# test can check that every rule deploy/ grants is actually used. Nobody else is logged.
AUDIT_POLICY = """apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
    users: ["soteria"]
  - level: None
"""


class SandboxError(RuntimeError):
    pass


def build_binaries(cfg: SandboxConfig) -> None:
    """Build and cache kube-apiserver and kube-controller-manager if missing."""
    if (cfg.kube_bin_dir / "kube-apiserver").exists() and (cfg.kube_bin_dir / "kube-controller-manager").exists():
        return
    print("sandbox: building kube-apiserver and kube-controller-manager 1.20 "
          "from Debian's source package (first start only, about 5 minutes)...", flush=True)
    subprocess.run(["bash", str(HERE / "build-kube.sh"), str(cfg.kube_bin_dir.parent)], check=True)


def tokens(cfg: SandboxConfig) -> dict[str, str]:
    """User name -> bearer token, created on first use."""
    path = cfg.kube_dir / "tokens.csv"
    if not path.exists():
        cfg.kube_dir.mkdir(parents=True, exist_ok=True)
        rows = []
        for user, group in TOKEN_USERS.items():
            token = secrets.token_hex(24)
            rows.append(f'{token},{user},{user}' + (f',"{group}"' if group else ""))
        path.write_text("\n".join(rows) + "\n")
        path.chmod(0o600)
    result = {}
    for line in path.read_text().splitlines():
        token, user = line.split(",")[:2]
        result[user] = token
    return result


def _service_account_keys(cfg: SandboxConfig) -> tuple[Path, Path]:
    key, pub = cfg.kube_dir / "sa.key", cfg.kube_dir / "sa.pub"
    if not key.exists():
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True)
        subprocess.run(["openssl", "rsa", "-in", str(key), "-pubout", "-out", str(pub)], check=True,
                       capture_output=True)
    return key, pub


def ca_cert(cfg: SandboxConfig) -> Path:
    """The apiserver's self-signed serving certificate, which is also its CA."""
    return cfg.kube_dir / "certs" / "apiserver.crt"


def write_kubeconfig(cfg: SandboxConfig, user: str = "admin", path: Path | None = None) -> Path:
    path = path or (cfg.kubeconfig if user == "admin" else cfg.kube_dir / f"kubeconfig-{user}")
    token = tokens(cfg)[user]
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
- name: sandbox
  cluster:
    server: {cfg.apiserver_url}
    certificate-authority: {ca_cert(cfg)}
users:
- name: {user}
  user:
    token: {token}
contexts:
- name: sandbox
  context:
    cluster: sandbox
    user: {user}
current-context: sandbox
""")
    path.chmod(0o600)
    return path


ETCD_QUOTA_BYTES = 8 * 2 ** 30  # etcd's largest suggested quota: 520,000 Longhorn CRs pass its 2 GiB default


def start_etcd(cfg: SandboxConfig) -> str:
    """etcd on its loopback port (no fsync: the sandbox's data is disposable); its URL."""
    etcd_url = f"http://{HOST}:{cfg.port('etcd')}"
    peer_url = f"http://{HOST}:{cfg.port('etcd-peer')}"
    procs.start(cfg, "etcd", [
        "etcd", "--name", "sandbox", "--data-dir", str(cfg.kube_dir / "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", peer_url, "--initial-advertise-peer-urls", peer_url,
        "--initial-cluster", f"sandbox={peer_url}", "--unsafe-no-fsync",
        "--quota-backend-bytes", str(ETCD_QUOTA_BYTES), "--log-level", "warn",
    ], env={"ETCD_UNSUPPORTED_ARCH": ""})
    _wait(lambda: _http_ok(f"{etcd_url}/health"), 30, "etcd", cfg)
    return etcd_url


def start_apiserver(cfg: SandboxConfig, etcd_url: str) -> None:
    sa_key, sa_pub = _service_account_keys(cfg)
    cert_dir = cfg.kube_dir / "certs"
    audit = []
    if cfg.rbac:
        policy = cfg.kube_dir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        audit = ["--audit-policy-file", str(policy), "--audit-log-path", str(cfg.audit_log),
                 "--audit-log-format", "json", "--audit-log-mode", "blocking"]
    procs.start(cfg, "kube-apiserver", [
        str(cfg.kube_bin_dir / "kube-apiserver"),
        "--etcd-servers", etcd_url,
        "--bind-address", HOST, "--advertise-address", HOST,
        "--secure-port", str(cfg.port("apiserver")), "--insecure-port", "0",
        "--cert-dir", str(cert_dir),
        "--token-auth-file", str(cfg.kube_dir / "tokens.csv"),
        "--authorization-mode", "RBAC" if cfg.rbac else "AlwaysAllow",
        "--disable-admission-plugins", "ServiceAccount",
        "--service-cluster-ip-range", "10.96.0.0/24",
        "--service-account-issuer", "https://kubernetes.default.svc",
        "--service-account-key-file", str(sa_pub),
        "--service-account-signing-key-file", str(sa_key),
        "--allow-privileged=true",
        "--endpoint-reconciler-type", "none",
        # Pod logs are proxied to the kubelet stand-in's self-signed endpoint.
        "--kubelet-preferred-address-types", "InternalIP",
        *audit,
        # Off only for benchmarks holding hundreds of thousands of CRs (paginated lists are read
        # from etcd either way in 1.20; the cache would hold every object decoded).
        *([] if cfg.apiserver_watch_cache else ["--watch-cache=false"]),
        "--v", "1",
    ])
    write_kubeconfig(cfg, "admin")
    write_kubeconfig(cfg, "soteria")
    _wait(lambda: apiserver_ready(cfg), 60, "kube-apiserver", cfg)


def start(cfg: SandboxConfig) -> None:
    build_binaries(cfg)
    tokens(cfg)
    sa_key, _ = _service_account_keys(cfg)
    (cfg.kube_dir / "certs").mkdir(parents=True, exist_ok=True)
    start_apiserver(cfg, start_etcd(cfg))

    procs.start(cfg, "kube-controller-manager", [
        str(cfg.kube_bin_dir / "kube-controller-manager"),
        "--kubeconfig", str(cfg.kubeconfig),
        "--leader-elect=false", "--controllers=*",
        "--service-account-private-key-file", str(sa_key),
        "--root-ca-file", str(ca_cert(cfg)),
        "--secure-port=0", "--port=0",
        # Bind pre-bound PVs and claims within a second or two (default 15 s), and let the
        # controllers keep up with thousands of objects (the default client rate is 20/s).
        "--pvclaimbinder-sync-period", "1s",
        "--kube-api-qps", "400", "--kube-api-burst", "800",
        "--v", "1",
    ])


def apiserver_ready(cfg: SandboxConfig, timeout: float = 2.0) -> bool:
    ctx = ssl.create_default_context(cafile=str(ca_cert(cfg))) if ca_cert(cfg).exists() else None
    if ctx is None:
        return False
    req = urllib.request.Request(f"{cfg.apiserver_url}/readyz",
                                 headers={"Authorization": f"Bearer {tokens(cfg)['admin']}"})
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=ctx) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return False


def stop(cfg: SandboxConfig) -> None:
    for name in ("kube-controller-manager", "kube-apiserver", "etcd"):
        procs.stop(cfg, name)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _wait(check, timeout: float, what: str, cfg: SandboxConfig) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise SandboxError(f"{what} did not become ready within {timeout:.0f}s; last log lines:\n"
                       + procs.log_tail(cfg, what))
