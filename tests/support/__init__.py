"""Helpers the tests share (imported, never collected); fixtures live in the conftest files.

fakes, fake_cluster  in-process fakes: an HTTP server; Kubernetes and Longhorn at the client seam
cast                 the fixed identities, and the server settings that give them their rights
clock, polling       time without sleeping; waiting for a condition with a deadline
http, metrics        requests to Soteria (raw, urllib, test client); its /metrics and denial counters
soteria, prometheus  Soteria under gunicorn, manage.py and the queue worker; a real Prometheus
emulator, jobs, kube the Longhorn emulator process and client; Jobs through the kubelet stand-in;
                     the sandbox's Kubernetes API
browser              Chromium for Playwright, the cast as headers, reloading until a condition
ports, processes     loopback ports (the port plan); processes seen through /proc
files, restic        comparing restored trees; restic claims, repositories and their locks
concurrent_calls     many requests released at once; what Soteria's labels say was left behind
load_run             a locust run (load_locustfile.py, in its own process) with /healthz sampled
"""
