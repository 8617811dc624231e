"""Test helpers: a real Debian Pushgateway on a free loopback port and a parser of its /metrics page."""

from __future__ import annotations

import shutil
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from canvascraft.settings import Settings
from canvascraft.stack.process import free_port
from canvascraft.stack.services import pushgateway_service


def run_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Pushgateway (canvascraft's own service definition) with a temp home; stopped at the end (fixture body)."""
    if shutil.which("prometheus-pushgateway") is None:
        pytest.skip("Debian package prometheus-pushgateway not installed (make apt)")
    settings = Settings(home=tmp_path_factory.mktemp("pgw-home"), pushgateway_port=free_port())
    service = pushgateway_service(settings)
    service.start()
    try:
        yield f"127.0.0.1:{settings.pushgateway_port}"
    finally:
        service.stop()


def scrape(gateway: str) -> dict[str, list[tuple[dict[str, str], float]]]:
    """GET /metrics of the gateway: sample name -> [(labels, value)]."""
    with urllib.request.urlopen(f"http://{gateway}/metrics", timeout=10) as response:
        text = response.read().decode()
    samples: dict[str, list[tuple[dict[str, str], float]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    """The value of the one sample of ``name`` whose labels include ``labels``."""
    found = [v for lab, v in samples.get(name, []) if all(lab.get(k) == val for k, val in labels.items())]
    assert len(found) == 1, (name, labels, samples.get(name))
    return found[0]
