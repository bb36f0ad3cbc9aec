"""What one Prometheus query gave: a number, or exactly which kind of nothing."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ReadingKind(StrEnum):
    NUMBER = "number"
    EMPTY = "empty"  # the query matched no series
    NAN_INF = "nan_inf"
    MULTIPLE_SERIES = "multiple_series"
    UNREACHABLE = "unreachable"
    TIMEOUT = "timeout"
    HTTP_ERROR = "http_error"  # 4xx/5xx, e.g. a PromQL syntax error (400) or overload (503)
    REDIRECT = "redirect"  # 3xx: Prometheus never redirects a query; its body is no reading
    MALFORMED = "malformed"  # not a Prometheus instant query's JSON, or over the size cap


@dataclass(frozen=True, slots=True)
class Reading:
    kind: ReadingKind
    value: float | None = None  # set only for NUMBER
    detail: str = ""

    def __str__(self) -> str:
        if self.kind is ReadingKind.NUMBER:
            return f"{self.value:g}"
        return f"{self.kind}" + (f" ({self.detail})" if self.detail else "")
