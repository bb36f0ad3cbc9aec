"""The load the soak asks for: a repeating profile through low, high and the band around the
watcher's thresholds, and what the watcher should do with it."""

from __future__ import annotations

from dataclasses import dataclass

# (rate asked for, share of the cycle's base period). With the demo's thresholds (HIGH 15, LOW 10)
# each level says what the watcher must do: 3 and 8 go (back) to primary once the stabilization
# window has passed, 30 and 17 burst, 13 and 12 sit in the band and must change nothing.
LEVELS: tuple[tuple[float, float], ...] = (
    (3, 1.0),
    (30, 1.0),
    (13, 0.75),
    (8, 0.75),
    (12, 0.5),
    (17, 0.75),
)


@dataclass(frozen=True)
class Phase:
    start: float  # seconds from the soak's start
    end: float
    rate: float


def phases(total: float, base: float) -> list[Phase]:
    """The profile repeated over `total` seconds, each level lasting its share of `base` s."""
    found: list[Phase] = []
    at = 0.0
    while at < total:
        for rate, share in LEVELS:
            end = min(at + share * base, total)
            found.append(Phase(at, end, rate))
            at = end
            if at >= total:
                break
    return found


def expected_burst(
    phases_: list[Phase], high: float, low: float, stabilization: float
) -> list[tuple[float, bool]]:
    """(time, burst?) at each change of what the switch rule wants for the rate asked for: burst
    above `high`, primary once below `low` for `stabilization` s, else as it was."""
    changes: list[tuple[float, bool]] = [(0.0, False)]
    state = False
    for phase in phases_:
        if phase.rate > high and not state:
            state = True
            changes.append((phase.start, True))
        elif phase.rate < low and state and phase.end - phase.start > stabilization:
            state = False
            changes.append((phase.start + stabilization, False))
    return changes
