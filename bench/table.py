"""The one table every benchmark prints its figures into."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Row:
    benchmark: str  # e.g. "worker c=64"
    metric: str  # e.g. "req/s"
    value: str  # measured here, formatted
    target: str = ""  # what the issue asks for
    original: str = ""  # the Node.js original on the same machine kind, where known


def print_table(rows: list[Row], title: str = "istio-burst benchmarks") -> None:
    header = Row("benchmark", "metric", "measured", "target", "original (Node.js)")
    cols = list(
        zip(
            *[(r.benchmark, r.metric, r.value, r.target, r.original) for r in [header, *rows]],
            strict=True,
        )
    )
    widths = [max(len(c) for c in col) for col in cols]
    print(f"{title} — {os.cpu_count()} cores — {time.strftime('%Y-%m-%d %H:%M %Z')}")
    for i, r in enumerate([header, *rows]):
        cells = (r.benchmark, r.metric, r.value, r.target, r.original)
        print("  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if i == 0:
            print("  ".join("-" * w for w in widths))
