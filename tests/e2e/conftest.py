"""End-to-end tests: Soteria's real code against the session's sandbox cluster."""

import pytest

from sandbox import faults
from tests.polling import wait_for  # noqa: F401  (for the e2e tests)

pytestmark = pytest.mark.sandbox


@pytest.fixture(autouse=True)
def _clean_faults(request):
    yield
    if "sandbox" in request.fixturenames or "live" in request.fixturenames:
        cfg = request.getfixturevalue("sandbox")
        faults.clear(cfg)
        faults.set_op_seconds(cfg, cfg.longhorn_op_seconds)



def kube(cfg):
    from kubernetes import client, config

    api = config.new_client_from_config(config_file=str(cfg.kubeconfig))
    return client.CoreV1Api(api)


def post(client, path, body):
    return client.post(path, body, content_type="application/json")
