"""The fixed cast of identities used wherever auth matters.

Over HTTP, as a proxy in front of Soteria would send them: ADMIN ... AUTOMATION, and the
server side of that cast (which group may do what, which address is the trusted proxy):
SECURE_ENV, PROXY, POD. Through Django's test client, as WSGI environ entries: CAST, with
the server side in the `auth_on` fixture (tests/conftest.py).
"""

from dataclasses import dataclass, field

TOKEN = "ci-token-0123456789abcdef0123456789abcdef"  # 41 characters
TOKEN_NAME = "ci"

ADMIN = (("X-Auth-Request-User", "alice"), ("X-Auth-Request-Email", "alice@example.org"),
         ("X-Auth-Request-Groups", "admin"))
OPERATOR = (("X-Auth-Request-User", "bob"), ("X-Auth-Request-Groups", "/admin"))
VIEWER = (("X-Auth-Request-User", "dave"), ("X-Auth-Request-Groups", "viewers"))
# Backups and restores in namespace ai only (and viewing ai).
SCOPED = (("X-Auth-Request-User", "erin"), ("X-Auth-Request-Groups", "team-ai"))
OUTSIDER = (("X-Auth-Request-User", "mallory"), ("X-Auth-Request-Groups", "guests"))
AUTOMATION = (("Authorization", f"Bearer {TOKEN}"),)

# --- the server side, for Soteria under real gunicorn -------------------------------------
PROXY = "127.0.0.2"  # the trusted proxy in front of Soteria
POD = "127.0.0.1"    # any other pod that can reach Soteria's port

SECURE_ENV = {
    "SOTERIA_AUTH_REQUIRED": "true",
    "SOTERIA_TRUSTED_PROXIES": f"{PROXY}/32",
    "SOTERIA_ALLOWED_GROUPS": "admin",
    "SOTERIA_READONLY_GROUPS": "viewers",
    "SOTERIA_BACKUP_SCOPES": "team-ai=ai",
    "SOTERIA_RESTORE_SCOPES": "team-ai=ai",
    "SOTERIA_AUTH_BEARER_TOKENS": f"{TOKEN_NAME}:{TOKEN}",
    "SOTERIA_ALLOWED_HOSTS": "127.0.0.1,localhost",
}

# --- through Django's test client ---------------------------------------------------------
CLIENT_TOKEN = "ci-token-0123456789abcdef0123456789"


@dataclass(frozen=True)
class Person:
    name: str
    headers: dict = field(default_factory=dict)


CAST = {
    "admin": Person("alice", {"HTTP_X_AUTH_REQUEST_USER": "alice", "HTTP_X_AUTH_REQUEST_EMAIL": "alice@example.org",
                              "HTTP_X_AUTH_REQUEST_GROUPS": "admin"}),
    "maintenance": Person("bob", {"HTTP_X_AUTH_REQUEST_USER": "bob", "HTTP_X_AUTH_REQUEST_GROUPS": "/maintenance"}),
    "semicolons": Person("carol", {"HTTP_X_FORWARDED_USER": "carol", "HTTP_X_FORWARDED_GROUPS": "devs; /maintenance"}),
    "viewer": Person("dave", {"HTTP_X_AUTH_REQUEST_USER": "dave", "HTTP_X_AUTH_REQUEST_GROUPS": "viewers"}),
    "scoped": Person("erin", {"HTTP_X_AUTH_REQUEST_USER": "erin", "HTTP_X_AUTH_REQUEST_GROUPS": "team-ai"}),
    "outsider": Person("mallory", {"HTTP_X_AUTH_REQUEST_USER": "mallory", "HTTP_X_AUTH_REQUEST_GROUPS": "guests"}),
    "token": Person("token:ci", {"HTTP_AUTHORIZATION": f"Bearer {CLIENT_TOKEN}"}),
    "wrong_token": Person("", {"HTTP_AUTHORIZATION": "Bearer not-the-token"}),
    "nobody": Person("", {}),
}
