"""Reading Soteria's metrics in tests: a scrape of /metrics as samples, and the
authorization-denial counters of this process as a before/after delta."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from soteria_site.core.metrics import AUTHZ_DENIALS

from .http import http
from .soteria import SoteriaServer

# A policy Secret no other test writes: the metrics end-to-end tests' servers use it, so the
# worker's scheduled policy evaluation never starts a backup those tests did not ask for.
POLICY_SECRET = "soteria-policies-metrics-e2e"


class Samples(dict):
    """{(sample name, frozenset of label pairs): value} of one scrape."""

    def select(self, name: str, **labels) -> dict[frozenset, float]:
        wanted = set(labels.items())
        return {key: value for (sample, key), value in self.items() if sample == name and wanted <= key}

    def one(self, name: str, **labels) -> float | None:
        """The value of the single series `name{labels...}`; None when absent."""
        found = self.select(name, **labels)
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} series: {sorted(map(sorted, found))}"
        return next(iter(found.values()), None)

    @property
    def names(self) -> set[str]:
        return {sample for sample, _ in self}


def parse(text: str) -> Samples:
    samples = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            key = (sample.name, frozenset(sample.labels.items()))
            assert key not in samples, f"duplicate series {key}"
            samples[key] = sample.value
    return samples


def scrape(server: SoteriaServer) -> Samples:
    status, headers, body = http(f"{server.url}/metrics")
    assert status == 200, (status, body[:500])
    assert headers.get("Content-Type", "").startswith("text/plain"), headers
    return parse(body.decode())


class Denials:
    """soteria_authz_denials_total per reason in this process, from when it was made."""

    def __init__(self):
        self.before = self.snapshot()

    @staticmethod
    def snapshot():
        from soteria_site.core.metrics import DENIAL_REASONS
        return {r: AUTHZ_DENIALS.labels(r)._value.get() for r in DENIAL_REASONS}

    def delta(self):
        now = self.snapshot()
        return {r: now[r] - self.before[r] for r in now if now[r] != self.before[r]}
