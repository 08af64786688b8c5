"""Where the sandbox keeps its files and which loopback ports it uses.

The sandbox is a development tool, not part of the service, so it reads its
own few environment variables here (Soteria's settings never do).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

KUBE_VERSION = "1.20"
LONGHORN_VERSIONS = ("1.7", "1.8")
NODE_NAME = "sandbox-node"
HOST = "127.0.0.1"

# Offsets from the port base, one per service.
PORTS = {"apiserver": 0, "etcd": 1, "etcd-peer": 2, "longhorn": 3, "s3": 4, "kubelet": 5}


def default_cache_dir() -> Path:
    return Path(os.environ.get("SOTERIA_CACHE_DIR") or Path.home() / ".cache" / "soteria")


def default_state_dir() -> Path:
    return Path(os.environ.get("SOTERIA_SANDBOX_DIR") or default_cache_dir() / "sandbox")


def default_port_base() -> int:
    return int(os.environ.get("SOTERIA_SANDBOX_PORT_BASE") or 17440)


@dataclass(frozen=True)
class SandboxConfig:
    state_dir: Path = field(default_factory=default_state_dir)
    cache_dir: Path = field(default_factory=default_cache_dir)
    port_base: int = field(default_factory=default_port_base)
    rbac: bool = False
    longhorn_version: str = "1.7"
    # Seconds an emulated backup or restore takes from start to Completed.
    longhorn_op_seconds: float = 2.0
    # Benchmark seeding only: the emulator writes new Longhorn CRs straight into etcd
    # (sandbox/longhorn/mirror.py EtcdCreates), a hundred times faster than the API server.
    longhorn_crs_via_etcd: bool = False
    # Benchmarks with 500,000 CRs turn the API server's watch cache off: it would hold every
    # object decoded (11 GB at 520,000 Longhorn CRs here); paginated lists read etcd either way.
    apiserver_watch_cache: bool = True

    def __post_init__(self) -> None:
        if self.longhorn_version not in LONGHORN_VERSIONS:
            raise ValueError(f"longhorn_version must be one of {LONGHORN_VERSIONS}")

    def port(self, service: str) -> int:
        return self.port_base + PORTS[service]

    # Files and directories -------------------------------------------------
    @property
    def kube_bin_dir(self) -> Path:
        return self.cache_dir / f"kube-{KUBE_VERSION}" / "bin"

    @property
    def s3_venv(self) -> Path:
        return self.cache_dir / "s3-venv"

    @property
    def pid_dir(self) -> Path:
        return self.state_dir / "pids"

    @property
    def log_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def kube_dir(self) -> Path:
        return self.state_dir / "kube"

    @property
    def kubeconfig(self) -> Path:
        return self.kube_dir / "kubeconfig"

    @property
    def audit_log(self) -> Path:
        """With rbac: the apiserver's audit log of what user `soteria` asked (JSON lines)."""
        return self.kube_dir / "audit.log"

    @property
    def longhorn_dir(self) -> Path:
        return self.state_dir / "longhorn"

    @property
    def longhorn_volumes_dir(self) -> Path:
        """Each Longhorn volume's contents: <dir>/<volume name>/."""
        return self.longhorn_dir / "volumes"

    @property
    def local_volumes_dir(self) -> Path:
        """Backing directories of the non-Longhorn (local) PVs."""
        return self.state_dir / "local-volumes"

    @property
    def config_file(self) -> Path:
        return self.state_dir / "sandbox.json"

    # URLs ------------------------------------------------------------------
    @property
    def apiserver_url(self) -> str:
        return f"https://{HOST}:{self.port('apiserver')}"

    @property
    def longhorn_url(self) -> str:
        return f"http://{HOST}:{self.port('longhorn')}"

    @property
    def s3_endpoint(self) -> str:
        return f"http://{HOST}:{self.port('s3')}"

    @property
    def restic_repository(self) -> str:
        return f"s3:{self.s3_endpoint}/soteria-restic/repo"

    # Persistence: `down` and `status` use the settings `up` used. ------------
    def save(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        data = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        self.config_file.write_text(json.dumps(data, indent=2) + "\n")

    @classmethod
    def load(cls, state_dir: Path | None = None) -> SandboxConfig:
        """The configuration of the sandbox in state_dir (or the default one)."""
        state_dir = state_dir or default_state_dir()
        path = state_dir / "sandbox.json"
        if not path.exists():
            return cls(state_dir=state_dir)
        data = json.loads(path.read_text())
        data["state_dir"] = Path(data["state_dir"])
        data["cache_dir"] = Path(data["cache_dir"])
        return cls(**data)
