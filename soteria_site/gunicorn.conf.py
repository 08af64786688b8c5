"""gunicorn configuration for Soteria's web process.

    gunicorn -c soteria_site/gunicorn.conf.py soteria_site.wsgi

Binds SOTERIA_LISTEN_ADDR (and SOTERIA_METRICS_LISTEN_ADDR), runs SOTERIA_WEB_WORKERS
workers of SOTERIA_WEB_THREADS threads, refuses to start
on a configuration error or a failed system check, clears gauge files of dead
processes at start (their counters stay, see prometheus_dir) and drops a dead worker's
live gauges.
"""

import json
import os
import sys

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "soteria_site.settings")

from django.core.exceptions import ImproperlyConfigured  # noqa: E402

try:
    from django.conf import settings  # noqa: E402

    bind = [settings.SOTERIA_LISTEN_ADDR] + ([settings.SOTERIA_METRICS_LISTEN_ADDR]
                                             if settings.SOTERIA_METRICS_LISTEN_ADDR else [])
    workers = settings.SOTERIA_WEB_WORKERS
    threads = settings.SOTERIA_WEB_THREADS
    # X-Forwarded-Proto (request.is_secure()) counts only from the proxies Soteria trusts.
    forwarded_allow_ips = ",".join(str(network) for network in settings.SOTERIA_TRUSTED_PROXIES)
except ImproperlyConfigured as exc:
    sys.exit(f"soteria: configuration error: {exc}")

from soteria_site.web import headers  # noqa: E402

worker_class = "gthread"
# A backup of a detached volume waits up to SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS for
# Longhorn to attach it and take the snapshot, then makes a few more calls; restores wait
# for Longhorn to accept a volume. Keep the worker timeout above the longest such wait
# (docs/decisions.md). A worker stopped mid-wait leaves a snapshot that the snapshot-prune
# schedule deletes once it is older than the snapshot timeout.
timeout = max(120, settings.SOTERIA_LONGHORN_SNAPSHOT_TIMEOUT_SECONDS + 60)
graceful_timeout = 30
keepalive = 5
accesslog = "-"
errorlog = "-"
# A header spelled with underscores (X_Auth_Request_User) would reach Django as the
# same variable as the proxy's X-Auth-Request-User: drop such headers, never trust them.
header_map = "drop"
# No control socket: it would be shared by every gunicorn of the machine (and the root
# filesystem is read-only in the pod).
control_socket_disable = True


# gunicorn answers a request it cannot parse itself, before Soteria sees it: a header with a
# CR, LF or NUL in it, a request line over limit_request_line (4094 bytes), more than 100
# headers or one over 8190 bytes. Its answer is an HTML page; Soteria's errors are JSON
# (docs/api.md), so these are too, with a stable code per status.
GUNICORN_ERRORS = {400: "bad_request", 403: "forbidden", 414: "uri_too_long", 417: "expectation_failed",
                   431: "header_fields_too_large", 500: "internal_error", 501: "not_implemented"}


def write_json_error(sock, status_int, reason, mesg):
    from gunicorn.util import write_nonblock

    body = json.dumps({"error": GUNICORN_ERRORS.get(status_int, "bad_request"), "detail": f"{reason}: {mesg}"})
    head = (f"HTTP/1.1 {status_int} {reason}\r\nConnection: close\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body.encode())}\r\n\r\n")
    write_nonblock(sock, head.encode("latin-1") + body.encode())


def _answer_parse_errors_as_json():
    from gunicorn import util

    util.write_error = write_json_error


_answer_parse_errors_as_json()


def on_starting(server):
    import django
    from django.core import checks

    from soteria_site import prometheus_dir

    django.setup()
    found = checks.run_checks(include_deployment_checks=False)
    for message in found:
        (server.log.error if message.is_serious() else server.log.warning)("soteria: %s", message)
    if any(m.is_serious() for m in found):
        sys.exit(2)
    prometheus_dir.remove_dead_process_files(settings.SOTERIA_METRICS_DIR)
    if settings.SOTERIA_AUTH_REQUIRED and not settings.SOTERIA_TRUSTED_PROXIES:
        server.log.warning("soteria: SOTERIA_TRUSTED_PROXIES is empty, so identity headers are ignored from every "
                           "peer and only bearer tokens authenticate; set it to your authenticating proxy's address")


def pre_request(worker, req):
    """Mark credentials a request repeated: gunicorn joins repeats with a comma, after which
    `X-Auth-Request-Groups: guests` + `X-Auth-Request-Groups: admin` would read as one list."""
    mark = headers.REPEATED_MARK.upper()
    req.headers = [(name, value) for name, value in req.headers if name != mark]
    repeated = headers.repeated(req.headers)
    if repeated:
        req.headers.append((mark, ",".join(repeated)))


def child_exit(server, worker):
    from soteria_site import prometheus_dir

    prometheus_dir.mark_process_dead(worker.pid)
