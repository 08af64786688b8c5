"""A fake Kubernetes API server behind a kubeconfig, for the clients that talk to Kubernetes."""

import pytest

from soteria_site.core import kubernetes
from tests.support.fakes import FakeServer


@pytest.fixture
def kube_api(settings, tmp_path):
    with FakeServer() as server:
        kubeconfig = tmp_path / "kubeconfig"
        kubeconfig.write_text(f"""apiVersion: v1
kind: Config
clusters: [{{name: fake, cluster: {{server: "{server.url}"}}}}]
users: [{{name: u, user: {{token: t0k3n}}}}]
contexts: [{{name: fake, context: {{cluster: fake, user: u}}}}]
current-context: fake
""")
        settings.KUBECONFIG = str(kubeconfig)
        kubernetes.reset()
        yield server
