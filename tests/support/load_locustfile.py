"""The load test's clients, for locust (run by tests.support.load_run as its own process:
locust patches the standard library with gevent, so no test process may import this file).

Each simulated client is automation with a bearer token (LOAD_TOKEN) that, after a short
pause each time, reads the inventory, plans a backup (dry run) of LOAD_NAMESPACE/LOAD_PVC, or
asks who it is. An answer counts as a failure unless it is 200 with the fields its endpoint
promises (docs/api.md), so an error page or a wrong identity is an error too. When the test
starts (locust has loaded and is about to spawn its clients) the file LOAD_STARTED_FILE is
written: the /healthz probes time the load, not locust's own start-up.
"""

from __future__ import annotations

import os

from locust import between, events, task
from locust.contrib.fasthttp import FastHttpUser

NAMESPACE = os.environ.get("LOAD_NAMESPACE", "ai")
PVC = os.environ.get("LOAD_PVC", "llm-cache")


@events.test_start.add_listener
def _started(environment, **kwargs):
    if os.environ.get("LOAD_STARTED_FILE"):
        with open(os.environ["LOAD_STARTED_FILE"], "w") as marker:
            marker.write("started\n")


class Automation(FastHttpUser):
    wait_time = between(0.2, 1.0)
    # A request waits at most this long for gunicorn; longer is a failure (timeout).
    network_timeout = connection_timeout = 60.0

    def on_start(self):
        self.headers = {"Authorization": f"Bearer {os.environ['LOAD_TOKEN']}"}

    def _check(self, response, ok) -> None:
        if response.status_code != 200:
            response.failure(f"{response.status_code}: {(response.text or '')[:300]}")
            return
        try:
            body = response.json()
        except ValueError:
            response.failure(f"not JSON: {(response.text or '')[:300]}")
            return
        problem = ok(body)
        if problem:
            response.failure(problem)

    @task(2)
    def inventory(self):
        with self.client.get("/v1/inventory", headers=self.headers, name="inventory",
                             catch_response=True) as response:
            self._check(response, lambda b: None if isinstance(b.get("namespaces"), list) and b["namespaces"]
                        else f"no namespaces in the inventory: {str(b)[:300]}")

    @task(2)
    def dry_run_backup(self):
        with self.client.post("/v1/backup", json={"namespace": NAMESPACE, "pvc": PVC, "dry_run": True},
                              headers=self.headers, name="backup dry run", catch_response=True) as response:
            self._check(response, lambda b: None if b.get("dry_run") is True and b.get("plan")
                        else f"not a plan: {str(b)[:300]}")

    @task(3)
    def whoami(self):
        with self.client.get("/v1/whoami", headers=self.headers, name="whoami", catch_response=True) as response:
            self._check(response, lambda b: None if b.get("auth") == "token"
                        else f"not the token's identity: {str(b)[:300]}")
