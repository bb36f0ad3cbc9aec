"""What one Prometheus query gave: a number, or exactly which kind of nothing (`ReadingKind`)."""

from __future__ import annotations

from dataclasses import dataclass

from istio_burst.core.contracts import ReadingKind


@dataclass(frozen=True, slots=True)
class Reading:
    kind: ReadingKind
    value: float | None = None  # set only for NUMBER
    detail: str = ""

    def __str__(self) -> str:
        if self.kind is ReadingKind.NUMBER:
            return f"{self.value:g}"
        return f"{self.kind}" + (f" ({self.detail})" if self.detail else "")


__all__ = ["Reading", "ReadingKind"]
