"""Django settings for Soteria.

This is the only module that reads the environment. Every SOTERIA_* variable of
the contract is parsed here, strictly: a bad value stops start-up with one line
naming the variable and what is allowed (see docs/configuration.md).
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from .env import (
    env_args,
    env_bool,
    env_choice,
    env_dns_label,
    env_float,
    env_int,
    env_key_values,
    env_list,
    env_listen_addr,
    env_rate,
    env_secret,
    env_str,
    env_url,
)

ENV = os.environ
BASE_DIR = Path(__file__).resolve().parent.parent
SERVICE_ACCOUNT_DIR = Path(
    env_str(ENV, "SOTERIA_SERVICE_ACCOUNT_DIR", "/var/run/secrets/kubernetes.io/serviceaccount")
)

# --- Where what may vanish lives (SQLite, Prometheus multiprocess files) ----
SOTERIA_DATA_DIR = Path(env_str(ENV, "SOTERIA_DATA_DIR", str(BASE_DIR / "data"))).resolve()
try:
    SOTERIA_DATA_DIR.mkdir(parents=True, exist_ok=True)
except OSError as exc:
    raise ImproperlyConfigured(f"SOTERIA_DATA_DIR={str(SOTERIA_DATA_DIR)!r} cannot be created: {exc.strerror}") from None
SOTERIA_METRICS_DIR = SOTERIA_DATA_DIR / "metrics"
SOTERIA_METRICS_DIR.mkdir(exist_ok=True)
# Every process (gunicorn workers, the queue worker) writes its counters here,
# so /metrics sums them. prometheus_client reads this when first imported.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(SOTERIA_METRICS_DIR))
PROMETHEUS_MULTIPROC_DIR = ENV["PROMETHEUS_MULTIPROC_DIR"]


def _service_namespace() -> str:
    """The pod's own namespace: service-account file, else POD_NAMESPACE, else soteria."""
    try:
        namespace = (SERVICE_ACCOUNT_DIR / "namespace").read_text().strip()
    except OSError:
        namespace = ""
    return namespace or env_str(ENV, "POD_NAMESPACE", "soteria")


def _bearer_tokens() -> list[tuple[str, str]]:
    """Bearer tokens as (name, token) pairs, every configured entry accepted verbatim.

    The contract's form is a plain comma-separated list: entry N is accepted exactly as
    written, whatever characters it holds, and is named token-N. An entry `name:secret`
    whose name is a plain word and whose secret is long enough is also accepted as
    `secret` alone, named `name` (so `requested_by` says token:name). Tokens shorter than
    32 characters stop start-up unless SOTERIA_ALLOW_SHORT_TOKENS=true.
    """
    raw = env_secret(ENV, "SOTERIA_AUTH_BEARER_TOKENS")
    allow_short = env_bool(ENV, "SOTERIA_ALLOW_SHORT_TOKENS", False)
    result: list[tuple[str, str]] = []
    for index, entry in enumerate(env_list({"v": raw}, "v"), start=1):
        name, sep, secret = entry.partition(":")
        named = bool(sep and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,62}", name)
                     and (allow_short or len(secret) >= MIN_TOKEN_LENGTH))
        if not named and not allow_short and len(entry) < MIN_TOKEN_LENGTH:
            raise ImproperlyConfigured(
                f"SOTERIA_AUTH_BEARER_TOKENS entry {index} is shorter than {MIN_TOKEN_LENGTH} characters: "
                "use long random tokens (e.g. `openssl rand -hex 32`), or set SOTERIA_ALLOW_SHORT_TOKENS=true")
        result.append((name if named else f"token-{index}", entry))
        if named:
            result.append((name, secret))
    return result


def _scopes(name: str) -> dict[str, frozenset[str]]:
    """`group=ns1,ns2;group2=ns3` -> {group: {namespaces}} (groups normalised like the others)."""
    from soteria_site.core.names import dns_label_error

    scopes: dict[str, frozenset[str]] = {}
    for item in env_list(ENV, name, separators=";"):
        group, sep, namespaces = item.partition("=")
        group = group.strip().lstrip("/")
        names = [n.strip() for n in namespaces.split(",") if n.strip()]
        bad = [n for n in names if dns_label_error(n)]
        if not sep or not group or not names or bad:
            raise ImproperlyConfigured(
                f"{name} entry {item!r} is not valid: use group=namespace[,namespace...] entries separated by ';'"
                + (f" ({bad[0]!r} is not a namespace name)" if bad else ""))
        scopes[group] = scopes.get(group, frozenset()) | frozenset(names)
    return scopes


def _networks(name: str) -> list:
    import ipaddress

    networks = []
    for item in env_list(ENV, name):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ImproperlyConfigured(f"{name} entry {item!r} is not an IP address or CIDR range") from None
    return networks


def _groups(name: str, default: str = "") -> list[str]:
    """A group list, comma- or semicolon-separated, leading '/' stripped."""
    return [g.lstrip("/") for g in env_list(ENV, name, env_list({"v": default}, "v"), separators=",;") if g.lstrip("/")]


def _admin_group() -> str:
    """The one group whose members may use /admin/: one of SOTERIA_ALLOWED_GROUPS (default: the first)."""
    named = _groups("SOTERIA_ADMIN_GROUP")
    allowed = ", ".join(SOTERIA_ALLOWED_GROUPS) or "none"
    if not named:
        return SOTERIA_ALLOWED_GROUPS[0] if SOTERIA_ALLOWED_GROUPS else ""
    if len(named) > 1 or named[0] not in SOTERIA_ALLOWED_GROUPS:
        raise ImproperlyConfigured(
            f"SOTERIA_ADMIN_GROUP={env_str(ENV, 'SOTERIA_ADMIN_GROUP')!r} is not valid: name one group of "
            f"SOTERIA_ALLOWED_GROUPS ({allowed})")
    return named[0]


# --- The contract's configuration -----------------------------------------------
# `auto` (an extension): Longhorn for PVCs on Longhorn volumes, restic for every other PVC.
SOTERIA_BACKUP_DRIVER = env_choice(ENV, "SOTERIA_BACKUP_DRIVER", "longhorn", ("longhorn", "restic", "auto"))
SOTERIA_LONGHORN_URL = env_url(ENV, "SOTERIA_LONGHORN_URL", "http://longhorn-backend.longhorn-system.svc:9500")
SOTERIA_LONGHORN_BACKUP_MODE = env_choice(ENV, "SOTERIA_LONGHORN_BACKUP_MODE", "incremental", ("incremental", "full"))
# How long a backup waits for Longhorn's snapshot to be ready (attaching a detached volume
# included) before it gives up and deletes the snapshot; also the age after which a
# Soteria snapshot with no backup is pruned.
SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS = env_int(ENV, "SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS", 120,
                                                    minimum=5, maximum=3600)
SOTERIA_RESTIC_REPOSITORY = env_str(ENV, "SOTERIA_RESTIC_REPOSITORY")
SOTERIA_RESTIC_SECRET_NAME = env_str(ENV, "SOTERIA_RESTIC_SECRET_NAME", "soteria-restic")
SOTERIA_SECRET_NAMESPACE = env_str(ENV, "SOTERIA_SECRET_NAMESPACE") or _service_namespace()
SOTERIA_RESTIC_IMAGE = env_str(ENV, "SOTERIA_RESTIC_IMAGE", "restic/restic:0.16.4")
SOTERIA_RESTIC_BACKUP_ARGS = env_args(ENV, "SOTERIA_RESTIC_BACKUP_ARGS")
SOTERIA_RESTIC_FORGET_ARGS = env_args(ENV, "SOTERIA_RESTIC_FORGET_ARGS")
SOTERIA_S3_ENDPOINT = env_str(ENV, "SOTERIA_S3_ENDPOINT")
SOTERIA_S3_REGION = env_str(ENV, "SOTERIA_S3_REGION")
SOTERIA_JOB_TTL_SECONDS = env_int(ENV, "SOTERIA_JOB_TTL_SECONDS", 86400, minimum=0)
SOTERIA_JOB_NODE_SELECTOR = env_key_values(ENV, "SOTERIA_JOB_NODE_SELECTOR")
SOTERIA_JOB_SERVICE_ACCOUNT = env_str(ENV, "SOTERIA_JOB_SERVICE_ACCOUNT")
# Beyond the contract: how long a restic Job may run, and one restic run in Soteria's own process.
SOTERIA_JOB_ACTIVE_DEADLINE_SECONDS = env_int(ENV, "SOTERIA_JOB_ACTIVE_DEADLINE_SECONDS", 21600, minimum=60)
# The non-root user and group restic Jobs run as (restricted Pod Security Standard: never 0).
SOTERIA_JOB_RUN_AS_USER = env_int(ENV, "SOTERIA_JOB_RUN_AS_USER", 65532, minimum=1)
SOTERIA_JOB_RUN_AS_GROUP = env_int(ENV, "SOTERIA_JOB_RUN_AS_GROUP", 65532, minimum=1)
SOTERIA_RESTIC_TIMEOUT_SECONDS = env_float(ENV, "SOTERIA_RESTIC_TIMEOUT_SECONDS", 120.0, minimum=1, maximum=3600)
# Restore drills (docs/drills.md): where scratch claims are restored and read, by what image,
# how many files' content is compared, how many drills run at once, and for how long.
SOTERIA_DRILL_NAMESPACE = env_dns_label(ENV, "SOTERIA_DRILL_NAMESPACE", SOTERIA_SECRET_NAMESPACE)
SOTERIA_DRILL_IMAGE = env_str(ENV, "SOTERIA_DRILL_IMAGE", "python:3.12-alpine")
SOTERIA_DRILL_SAMPLE_FILES = env_int(ENV, "SOTERIA_DRILL_SAMPLE_FILES", 32, minimum=1, maximum=256)
SOTERIA_DRILL_MAX_CONCURRENT = env_int(ENV, "SOTERIA_DRILL_MAX_CONCURRENT", 2, minimum=1, maximum=32)
SOTERIA_DRILL_TIMEOUT_SECONDS = env_int(ENV, "SOTERIA_DRILL_TIMEOUT_SECONDS", 3600, minimum=30, maximum=7 * 86400)
# A drill renews its Lease this often (x4 = the Lease's duration): a drill whose worker died is
# swept once its Lease has expired.
SOTERIA_DRILL_HEARTBEAT_SECONDS = env_int(ENV, "SOTERIA_DRILL_HEARTBEAT_SECONDS", 15, minimum=1, maximum=600)
SOTERIA_DRILL_HISTORY = env_int(ENV, "SOTERIA_DRILL_HISTORY", 20, minimum=1, maximum=200)
# Swapping a restored claim into place (docs/swap.md): how long each wait may take (a
# workload's pods going away, a claim deleted, a claim binding).
SOTERIA_SWAP_WAIT_SECONDS = env_int(ENV, "SOTERIA_SWAP_WAIT_SECONDS", 120, minimum=5, maximum=3600)
# A restore renews its Lease this often (x4 = the Lease's duration): one whose process died is
# swept once its Lease has expired (backups/services/restore_leases.py).
SOTERIA_RESTORE_HEARTBEAT_SECONDS = env_int(ENV, "SOTERIA_RESTORE_HEARTBEAT_SECONDS", 15, minimum=1, maximum=600)
SOTERIA_LISTEN_ADDR = env_listen_addr(ENV, "SOTERIA_LISTEN_ADDR", ":8080")
SOTERIA_AUTH_REQUIRED = env_bool(ENV, "SOTERIA_AUTH_REQUIRED", False)
SOTERIA_ALLOWED_GROUPS = _groups("SOTERIA_ALLOWED_GROUPS", "admin,maintenance")
MIN_TOKEN_LENGTH = 32
SOTERIA_AUTH_BEARER_TOKENS = _bearer_tokens()
SOTERIA_BACKUP_MAX_AGE_HOURS = env_float(ENV, "SOTERIA_BACKUP_MAX_AGE_HOURS", 24.0, minimum=0,
                                         exclusive_minimum=True, maximum=24 * 366)
SOTERIA_METRICS_REFRESH_SECONDS = env_int(ENV, "SOTERIA_METRICS_REFRESH_SECONDS", 300, minimum=10, maximum=86400)
SOTERIA_POLICY_EVAL_SECONDS = env_int(ENV, "SOTERIA_POLICY_EVAL_SECONDS", 300, minimum=10, maximum=86400)
SOTERIA_POLICY_SECRET_NAME = env_str(ENV, "SOTERIA_POLICY_SECRET_NAME", "soteria-policies")

# --- Beyond the contract (documented in docs/configuration.md) -----------------
# Authorization (docs/auth.md): read-only groups, namespace scopes, trusted proxies.
SOTERIA_ADMIN_GROUP = _admin_group()
SOTERIA_READONLY_GROUPS = _groups("SOTERIA_READONLY_GROUPS")
SOTERIA_BACKUP_SCOPES = _scopes("SOTERIA_BACKUP_SCOPES")
SOTERIA_RESTORE_SCOPES = _scopes("SOTERIA_RESTORE_SCOPES")
# Peers whose identity and X-Forwarded-* headers count; empty = nobody's (fail closed).
SOTERIA_TRUSTED_PROXIES = _networks("SOTERIA_TRUSTED_PROXIES")
# Which identity header family counts: auto = X-Auth-Request-* when any of it is present,
# else X-Forwarded-*; or pin one.
SOTERIA_AUTH_HEADERS = env_choice(ENV, "SOTERIA_AUTH_HEADERS", "auto", ("auto", "x-auth-request", "x-forwarded"))
# Request bodies larger than this are refused (413) before anything reads them.
SOTERIA_MAX_BODY_BYTES = env_int(ENV, "SOTERIA_MAX_BODY_BYTES", 64 * 1024, minimum=1024, maximum=16 * 1024 * 1024)
# Per identity and web process: mutations (POST, DELETE) and inventory builds.
SOTERIA_THROTTLE_MUTATIONS = env_rate(ENV, "SOTERIA_THROTTLE_MUTATIONS", "60/minute")
SOTERIA_THROTTLE_INVENTORY = env_rate(ENV, "SOTERIA_THROTTLE_INVENTORY", "20/minute")
# A namespace-wide backup or restore refuses namespaces with more PVCs than this.
SOTERIA_NAMESPACE_BATCH_MAX = env_int(ENV, "SOTERIA_NAMESPACE_BATCH_MAX", 500, minimum=1, maximum=100000)
# A second listener for /metrics, /healthz and /readyz only (empty: /metrics on the main port).
SOTERIA_METRICS_LISTEN_ADDR = (env_listen_addr(ENV, "SOTERIA_METRICS_LISTEN_ADDR", "")
                               if env_str(ENV, "SOTERIA_METRICS_LISTEN_ADDR") else "")
if SOTERIA_METRICS_LISTEN_ADDR and SOTERIA_METRICS_LISTEN_ADDR.rsplit(":", 1)[1] == SOTERIA_LISTEN_ADDR.rsplit(":", 1)[1]:
    raise ImproperlyConfigured("SOTERIA_METRICS_LISTEN_ADDR must use another port than SOTERIA_LISTEN_ADDR")
# Where Longhorn keeps its custom resources, which the inventory reads (docs/longhorn.md).
SOTERIA_LONGHORN_NAMESPACE = env_dns_label(ENV, "SOTERIA_LONGHORN_NAMESPACE", "longhorn-system")
SOTERIA_UPSTREAM_TIMEOUT_SECONDS = env_float(ENV, "SOTERIA_UPSTREAM_TIMEOUT_SECONDS", 10.0, minimum=0.1, maximum=300)
SOTERIA_READY_TIMEOUT_SECONDS = env_float(ENV, "SOTERIA_READY_TIMEOUT_SECONDS", 2.0, minimum=0.1, maximum=30)
SOTERIA_WEB_WORKERS = env_int(ENV, "SOTERIA_WEB_WORKERS", 2, minimum=1, maximum=64)
# Threads per web process; one of them is always kept free for probes and cheap pages.
SOTERIA_WEB_THREADS = env_int(ENV, "SOTERIA_WEB_THREADS", 8, minimum=2, maximum=64)
SOTERIA_WORKER_CONCURRENCY = env_int(ENV, "SOTERIA_WORKER_CONCURRENCY", 2, minimum=1, maximum=32)
# A backup still running after this long is reported "backup stuck".
SOTERIA_BACKUP_STUCK_HOURS = env_float(ENV, "SOTERIA_BACKUP_STUCK_HOURS", 6.0, minimum=0, exclusive_minimum=True,
                                       maximum=24 * 30)
# How many PVCs a namespace-wide backup or restore works on at once.
SOTERIA_NAMESPACE_CONCURRENCY = env_int(ENV, "SOTERIA_NAMESPACE_CONCURRENCY", 4, minimum=1, maximum=32)
SOTERIA_LOG_LEVEL = env_choice(ENV, "SOTERIA_LOG_LEVEL", "info", ("debug", "info", "warning", "error"))
# Kubernetes access from outside a pod (inside one, the in-cluster config wins).
KUBECONFIG = env_str(ENV, "KUBECONFIG")
IN_CLUSTER = bool(env_str(ENV, "KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").exists()

# --- Django -----------------------------------------------------------------
DEBUG = env_bool(ENV, "SOTERIA_DEBUG", False)
ALLOWED_HOSTS = env_list(ENV, "SOTERIA_ALLOWED_HOSTS", ["*"])
CSRF_TRUSTED_ORIGINS = env_list(ENV, "SOTERIA_CSRF_TRUSTED_ORIGINS")
# TLS ends at the ingress or proxy in front of Soteria; it says so with these headers,
# which soteria_site.web.edge removes from requests of peers outside SOTERIA_TRUSTED_PROXIES.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
USE_X_FORWARDED_HOST = True
# Console form posts are tiny; the same limit as every other body.
DATA_UPLOAD_MAX_MEMORY_SIZE = SOTERIA_MAX_BODY_BYTES
DATA_UPLOAD_MAX_NUMBER_FIELDS = 100
SOTERIA_SECURE_COOKIES = env_bool(ENV, "SOTERIA_SECURE_COOKIES", True)
SESSION_COOKIE_SECURE = SOTERIA_SECURE_COOKIES
CSRF_COOKIE_SECURE = SOTERIA_SECURE_COOKIES
SESSION_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
# HTTPS redirects and HSTS belong to the ingress: probes reach the pod over plain HTTP.
SILENCED_SYSTEM_CHECKS = ["security.W004", "security.W008"]


def _secret_key() -> str:
    """SOTERIA_SECRET_KEY(_FILE), else a random key kept in the data directory."""
    key = env_secret(ENV, "SOTERIA_SECRET_KEY")
    if key:
        if len(key) < 50:
            raise ImproperlyConfigured("SOTERIA_SECRET_KEY is too short: use at least 50 random characters")
        return key
    path = SOTERIA_DATA_DIR / "secret_key"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        key = secrets.token_urlsafe(64)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(key)
        return key
    except FileExistsError:  # pragma: no cover - lost a race with a sibling process
        return path.read_text().strip()


SECRET_KEY = _secret_key()

INSTALLED_APPS = [
    # The admin at /admin/ is soteria_site.admin.site, registered there explicitly: no autodiscovery.
    "django.contrib.admin.apps.SimpleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # soteria_site comes before django_q: its `qcluster` wraps django-q2's.
    "soteria_site",
    "rest_framework",
    "drf_spectacular",
    "django_prometheus",
    "django_q",
    "backups",
    "policies",
]

MIDDLEWARE = [
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    # The edge: which listener, how big a body, which peer's headers count, how busy.
    "soteria_site.web.edge.ListenerMiddleware",
    "soteria_site.web.edge.BodyLimitMiddleware",
    "soteria_site.web.edge.PeerTrustMiddleware",
    "soteria_site.web.edge.BusyMiddleware",
    "soteria_site.web.edge.ContentSecurityPolicyMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # /static/ is answered here, public and before sessions, CSRF and identity.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "soteria_site.web.authn.IdentityMiddleware",
    "soteria_site.web.permissions.RequireIdentityMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "soteria_site.urls"
WSGI_APPLICATION = "soteria_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "soteria_site.context.soteria",
            ],
        },
    },
]

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": SOTERIA_DATA_DIR / "soteria.sqlite3",
        "OPTIONS": {
            # Web workers and the queue worker share one file: wait, don't fail.
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
            "transaction_mode": "IMMEDIATE",
        },
        # Tests use a file too: SQLite's shared-cache memory databases lock whole
        # tables between threads instead of waiting like the real file does.
        "TEST": {"NAME": str(SOTERIA_DATA_DIR / "test-soteria.sqlite3")},
    }
}
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage",
                "OPTIONS": {"location": str(SOTERIA_DATA_DIR / "files")}},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    # Policies live in a Kubernetes Secret (SOTERIA_POLICY_SECRET_NAME in SOTERIA_SECRET_NAMESPACE).
    "policies": {"BACKEND": "policies.store.SecretStorage"},
}
CACHES = {
    # Shared across processes so django-q2's cluster status works from the web side.
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "soteria_cache"},
    # Request rates per identity: in memory, so counting a request never writes the database.
    "throttle": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "soteria-throttle",
                 "OPTIONS": {"MAX_ENTRIES": 10000}},
}
AUTHENTICATION_BACKENDS = ["soteria_site.web.authn.ProxyUserBackend"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
STATIC_URL = "static/"
# WhiteNoise serves the apps' static files straight from where the finders find them
# (DRF's, the admin's, soteria_site/static): nothing to collect, in a checkout, in the
# tests or in the image (docs/deployment.md).
WHITENOISE_USE_FINDERS = True

REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": [
        "rest_framework.renderers.JSONRenderer",
        "rest_framework.renderers.BrowsableAPIRenderer",
    ],
    "DEFAULT_PARSER_CLASSES": ["soteria_site.web.parsers.SoteriaJSONParser"],
    "EXCEPTION_HANDLER": "soteria_site.web.api_errors.exception_handler",
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "soteria_site.web.authn.BearerTokenAuthentication",
        "soteria_site.web.authn.ProxyHeaderAuthentication",
    ],
    "DEFAULT_THROTTLE_CLASSES": ["soteria_site.web.throttles.MutationThrottle"],
    "DEFAULT_THROTTLE_RATES": {"mutations": SOTERIA_THROTTLE_MUTATIONS, "inventory": SOTERIA_THROTTLE_INVENTORY},
    "DEFAULT_PERMISSION_CLASSES": ["soteria_site.web.permissions.HasSoteriaPermission"],
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Soteria API",
    "DESCRIPTION": "PVC backup and restore for Kubernetes (Longhorn and restic drivers).",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
}

Q_CLUSTER = {
    "name": "soteria",
    "orm": "default",
    "workers": SOTERIA_WORKER_CONCURRENCY,
    # A task may run as long as a restore drill may (the longest task); redelivery after that.
    "timeout": max(3600, SOTERIA_DRILL_TIMEOUT_SECONDS + 300),
    "retry": max(3600, SOTERIA_DRILL_TIMEOUT_SECONDS + 300) + 100,
    "max_attempts": 1,
    "catch_up": False,
    "save_limit": 1000,
    "label": "Tasks",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": SOTERIA_LOG_LEVEL.upper()},
    "loggers": {
        "kubernetes": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
    },
}
