"""The fixed cast of identities, as a proxy in front of Soteria would send them over HTTP.

The server side of the cast (which group may do what) is `SECURE_ENV` in
tests/security/conftest.py.
"""

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
