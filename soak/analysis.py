"""From what the soak recorded to its figures: hashes lost, recovery after each fault, memory
growth, the watcher's decisions against the load, errors in the logs."""

from __future__ import annotations

import bisect
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from harness.frontend import Page
from soak.faults import Fault
from soak.observe import Record
from soak.profile import Phase, expected_burst

LOSS_BIN = 10.0  # seconds per bar of the hash-loss plot
RATE_WINDOW = 3.0  # seconds over which "frequency back" is judged
RATE_BACK = 0.7  # share of the asked rate that counts as back
DECISION_LAG = 30.0  # seconds a decision may trail the load (or a fault) that explains it
BURST_GRACE = 20.0  # seconds within which an expected burst must show
SETTLE = 5.0  # seconds after the end during which hashes may still be on their way


@dataclass
class Recovery:
    kind: str
    target: str
    at: float  # seconds from the start
    lasted: float  # seconds from the fault's start to its end
    first_hash: float | None  # seconds after the end
    frequency_back: float | None
    watcher_ready: float | None
    lost_inside: int
    watcher_unready_because: list[str]  # what its /healthz said after the fault ended

    @property
    def worst(self) -> float | None:
        times = [self.first_hash, self.frequency_back, self.watcher_ready]
        return None if None in times else max(t for t in times if t is not None)


def delivered(page: Page) -> dict[str, tuple[float, float]]:
    """value -> (published_at, arrival) of every hash the observer page was shown."""
    return {
        h["value"]: (float(h["published_at"]), e.wall)
        for e in page.events
        if e.name == "hashes"
        for h in e.data["hashes"]
    }


def elided(page: Page) -> int:
    """Hashes counted in a batch but not shown in it (a page that fell behind)."""
    return sum(e.data["count"] - len(e.data["hashes"]) for e in page.events if e.name == "hashes")


def in_window(t: float, windows: list[tuple[float, float]]) -> bool:
    return any(start <= t <= end for start, end in windows)


def asked_at(record: Record, t: float) -> float:
    rate = 0.0
    for at, asked in record.asked:
        if at > t:
            break
        rate = asked
    return rate


def lost_times(record: Record, shown: dict[str, tuple[float, float]]) -> list[float]:
    """When each hash Redis delivered but the observer page never showed was published, sorted."""
    return sorted(p for v, p in record.tapped.items() if v not in shown)


def hash_loss(
    record: Record,
    shown: dict[str, tuple[float, float]],
    lost: list[float],
    faults: list[Fault],
    until: float,
) -> dict[str, Any]:
    """`lost` as lost_times() gives it."""
    windows = [w for f in faults if (w := f.window) is not None]
    counted = {v: p for v, p in record.tapped.items() if p <= until - SETTLE}
    bins: dict[int, dict[str, int]] = defaultdict(lambda: {"published": 0, "lost": 0, "inside": 0})
    for p in counted.values():
        bins[int((p - record.started) // LOSS_BIN)]["published"] += 1
    counted_lost = lost[: bisect.bisect_right(lost, until - SETTLE)]
    inside = 0
    for p in counted_lost:
        key = "inside" if in_window(p, windows) else "lost"
        inside += key == "inside"
        bins[int((p - record.started) // LOSS_BIN)][key] += 1
    return {
        "published": len(counted),
        "published_by_workers": round(sum(record.published.values())),
        "delivered": sum(1 for v in counted if v in shown),
        "lost_outside_windows": len(counted_lost) - inside,
        "lost_inside_windows": inside,
        "shown_not_tapped": sum(1 for v in shown if v not in record.tapped),
        "bins": [{"t": k * LOSS_BIN, **v} for k, v in sorted(bins.items())],
    }


def recoveries(
    record: Record, shown: dict[str, tuple[float, float]], lost: list[float], faults: list[Fault]
) -> list[Recovery]:
    """`lost` as lost_times() gives it."""
    published = sorted(p for p, _ in shown.values())
    by_arrival = sorted((a, p) for p, a in shown.values())
    found = []
    for fault in faults:
        end = fault.ended
        after = by_arrival[bisect.bisect_left(by_arrival, (end, 0.0)) :]
        first = next((a - end for a, p in after if p >= end), None)
        found.append(
            Recovery(
                kind=fault.kind,
                target=fault.target,
                at=round(fault.started - record.started, 1),
                lasted=round(fault.ended - fault.started, 1),
                first_hash=_round(first),
                frequency_back=_round(_rate_back(record, published, end)),
                watcher_ready=_round(_ready_again(record, end)),
                lost_inside=_count_between(lost, fault.window),
                watcher_unready_because=_unready_reasons(record, end),
            )
        )
    return found


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 2)


def _count_between(times: list[float], window: tuple[float, float] | None) -> int:
    if window is None:
        return 0
    return bisect.bisect_right(times, window[1]) - bisect.bisect_left(times, window[0])


def _rate_back(
    record: Record, published: list[float], end: float, limit: float = 60
) -> float | None:
    t = end
    while t < end + limit:
        want = RATE_BACK * asked_at(record, t) * RATE_WINDOW
        got = bisect.bisect_left(published, t + RATE_WINDOW) - bisect.bisect_left(published, t)
        if want > 0 and got >= want:
            return t - end
        t += 0.25
    return None


def _ready_again(record: Record, end: float) -> float | None:
    return next((t - end for t, ready in record.ready if t >= end and ready), None)


def _unready_reasons(record: Record, end: float, most: int = 3) -> list[str]:
    """The distinct reasons the watcher gave for not being ready, from `end` until it was."""
    ready_at = next((t for t, ready in record.ready if t >= end and ready), float("inf"))
    reasons: list[str] = []
    for t, reason in record.unready:
        if end <= t < ready_at and reason not in reasons:
            reasons.append(reason)
    return reasons[:most]


def decisions(
    record: Record,
    *,
    phases: list[Phase],
    faults: list[Fault],
    high: float,
    low: float,
    stabilization: float,
) -> dict[str, Any]:
    """The watcher's changes against the load: flaps (a change neither the load nor a fault
    explains) and bursts the load asked for that did not happen."""
    changes = {}
    for _, status in record.status:
        change = status.get("last_change")
        if change:
            changes[change["at"]] = change
    expected = [
        (record.started + t, burst) for t, burst in expected_burst(phases, high, low, stabilization)
    ]
    fault_spans = [(f.started, f.ended + DECISION_LAG) for f in faults]
    listed = []
    flaps = 0
    for at, change in sorted(changes.items()):
        to_burst = change["new"]["burst"] > 0
        # The load explains a change to where the rule had just gone: an expected move to the
        # same side shortly before (the rate takes a few seconds to show in the readings).
        by_load = any(
            burst == to_burst and at - DECISION_LAG <= moved <= at + 2
            for moved, burst in expected[1:]
        )
        by_fault = in_window(at, fault_spans)
        explained = "load" if by_load else "fault" if by_fault else "nothing: a flap"
        flaps += explained == "nothing: a flap"
        listed.append(
            {
                "t": round(at - record.started, 1),
                "to": "burst" if to_burst else "primary",
                "decision": change["decision"],
                "reason": change["reason"],
                "explained_by": explained,
            }
        )
    missed = []
    delays = []
    for (start, burst), following in zip(
        expected, [*expected[1:], (float("inf"), False)], strict=True
    ):
        end = min(following[0], record.started + phases[-1].end)
        if not burst or end - start < BURST_GRACE:
            continue
        shown = [t for t, s in record.status if start <= t <= end and s["weights"]["burst"] > 0]
        if shown:
            delays.append(round(shown[0] - start, 1))
        elif not in_window(start, fault_spans):
            missed.append(round(start - record.started, 1))
    return {"changes": listed, "flaps": flaps, "missed_bursts": missed, "burst_delays": delays}


def processes(record: Record, warmup: float, min_span: float) -> dict[str, Any]:
    """Per component: the RSS slope (MB/hour) after warm-up over its longest-lived incarnation
    (`judged` when that one lived `min_span` s past its warm-up), the peak RSS of each
    incarnation (what a process restarted every round would show if it grew), CPU and fds."""
    series: dict[tuple[str, int], list[tuple[float, float, float, int]]] = defaultdict(list)
    for t, name, pid, rss, cpu, fds in record.procs:
        series[(name, pid)].append((t, rss, cpu, fds))
    lives: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for (name, _pid), samples in series.items():
        born = samples[0][0]
        kept = [s for s in samples if s[0] >= max(record.started + warmup, born + warmup / 2)]
        span = kept[-1][0] - kept[0][0] if len(kept) > 2 else 0.0
        slope = (
            float(np.polyfit([s[0] for s in kept], [s[1] for s in kept], 1)[0]) * 3600
            if span > 0
            else None
        )
        lives[name].append(
            {
                "span": span,
                "slope": slope,
                "peak": max(s[1] for s in samples),
                "last": samples[-1],
                "first_fds": samples[0][3],
                "cpu": samples[-1][2] - samples[0][2],
                "seconds": samples[-1][0] - samples[0][0],
                "fds_max": max(s[3] for s in samples),
            }
        )
    found: dict[str, Any] = {}
    for name, incarnations in lives.items():
        longest = max(incarnations, key=lambda life: float(life["span"]))
        slope = longest["slope"]
        cpu = sum(life["cpu"] for life in incarnations) / max(
            sum(life["seconds"] for life in incarnations), 1e-9
        )
        found[name] = {
            "incarnations": len(incarnations),
            "rss_mb_last": round(incarnations[-1]["last"][1], 1),
            "rss_mb_peaks": [round(life["peak"], 1) for life in incarnations],
            "rss_slope_mb_per_hour": None if slope is None else round(slope, 2),
            "slope_span_s": round(longest["span"]),
            "judged": longest["span"] >= min_span,
            "cpu_percent": round(cpu * 100, 1),
            "fds_first": incarnations[0]["first_fds"],
            "fds_last": incarnations[-1]["last"][3],
            "fds_max": max(life["fds_max"] for life in incarnations),
        }
    return found


def recovery_rows(found: list[Recovery]) -> list[dict[str, Any]]:
    return [{**asdict(r), "worst": r.worst} for r in found]
