"""Reading a service's GET /metrics the way Prometheus would."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families


def sample_sum(text: str, name: str, **labels: str) -> float:
    """The sum of the samples named `name` whose labels include these (0 when there are none)."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


def metric_value(base_url: str, name: str, **labels: str) -> float:
    """`sample_sum` of the service at `base_url`, read now."""
    return sample_sum(httpx.get(base_url + "/metrics", timeout=5).text, name, **labels)
