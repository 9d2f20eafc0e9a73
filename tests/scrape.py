"""Reading Prometheus' text format the way a scraper does (prometheus-client's own parser)."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import METRICS_AUTH


class Samples(dict):
    """(sample name, frozenset of label pairs) → value, from one scrape."""

    def value(self, name: str, **labels: str) -> float | None:
        """The sample with exactly these labels (None when absent)."""
        return self.get((name, frozenset(labels.items())))

    def total(self, name: str, **labels: str) -> float:
        """The sum of every sample of ``name`` whose labels include these."""
        wanted = set(labels.items())
        return sum(v for (n, pairs), v in self.items() if n == name and wanted <= pairs)

    def names(self) -> set[str]:
        return {name for name, _ in self}


def parse(text: str) -> Samples:
    out = Samples()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def scrape_client(client) -> Samples:
    """Scrape an app's /metrics through its Flask test client."""
    r = client.get("/metrics", headers=METRICS_AUTH)
    assert r.status_code == 200, r.get_data(as_text=True)
    return parse(r.get_data(as_text=True))


def scrape_url(url: str) -> Samples:
    """Scrape a real server's /metrics over HTTP."""
    request = urllib.request.Request(url, headers=METRICS_AUTH)
    with urllib.request.urlopen(request, timeout=10) as response:
        return parse(response.read().decode())
