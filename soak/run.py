"""The soak: the local system under a moving load, pages that come and go, and faults, for as
long as asked; then the figures and the report."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import orjson

from soak import analysis
from soak.faults import OUTAGE_GRACE, Fault, inject, schedule
from soak.logs import count_logs
from soak.observe import Pages, Record, poll_proxy, poll_watcher, sample_processes, tap_hashes
from soak.profile import Phase, phases
from soak.system import System, soak_settings

RECORD_FIELDS = {f.name for f in fields(Record)}
RECOVERY_LIMIT = 10.0  # seconds: every fault must be recovered from within this
RSS_GROWTH_LIMIT = 10.0  # MB/hour after warm-up


@dataclass(frozen=True)
class Options:
    minutes: float = 30
    frontends: int = 2
    out: Path = Path(".soak")
    fault_every: float = 30.0  # seconds between the starts of two faults
    phase: float = 40.0  # seconds of the profile's base period
    pages: int = 20  # pages that come and go
    sample_every: float = 5.0  # seconds between process samples
    warmup: float = 300.0  # seconds before RSS growth is judged
    judge_span: float = 600.0  # seconds of one process's life needed to judge its RSS slope

    @property
    def seconds(self) -> float:
        return self.minutes * 60


@dataclass
class Observed:
    """What a run saw, kept in `<out>/observed.json` so the report can be made again."""

    options: Options
    record: Record
    shown: dict[str, tuple[float, float]]  # hash -> (published_at, arrival) on the observer page
    elided: int
    faults: list[Fault]
    plan: list[Phase]
    thresholds: tuple[float, float, float]  # high, low, stabilization window

    @property
    def path(self) -> Path:
        return self.options.out / "observed.json"

    def save(self) -> None:
        self.path.write_bytes(orjson.dumps(asdict(self), default=str))

    @classmethod
    def load(cls, out: Path) -> Observed:
        data = orjson.loads((out / "observed.json").read_bytes())
        options = {**data["options"], "out": out}
        return cls(
            options=Options(**options),
            # A run saved by an older soak may lack a field or carry one since removed.
            record=Record(**{k: v for k, v in data["record"].items() if k in RECORD_FIELDS}),
            shown={k: (v[0], v[1]) for k, v in data["shown"].items()},
            elided=data["elided"],
            faults=[Fault(**f) for f in data["faults"]],
            plan=[Phase(**p) for p in data["plan"]],
            thresholds=tuple(data["thresholds"]),
        )


async def _sleep_until(t: float) -> None:
    await asyncio.sleep(max(0.0, t - time.time()))


async def _drive_load(pages: Pages, plan: list[Phase], started: float) -> None:
    for phase in plan:
        await _sleep_until(started + phase.start)
        await pages.set_rate(phase.rate)


async def _inject_faults(
    system: System, options: Options, started: float, done: list[Fault]
) -> None:
    """Round after round of the schedule, one fault every `fault_every` s (or once the previous
    is back), none that could not recover before the end."""
    next_at = started + options.fault_every
    # The last fault ends early enough for its recovery and outage window to be seen whole.
    stop_by = started + options.seconds - RECOVERY_LIMIT - OUTAGE_GRACE - analysis.SETTLE
    cycle = 0
    while True:
        for fault in schedule(options.frontends, cycle):
            await _sleep_until(next_at)
            if time.time() > stop_by:
                return
            await inject(system, fault)
            done.append(fault)
            with contextlib.suppress(TimeoutError, RuntimeError):
                await asyncio.to_thread(system.wait_ready, fault.target)
            next_at = max(fault.started + options.fault_every, time.time() + 5)
        cycle += 1


async def drive(system: System, options: Options) -> tuple[Record, Pages, list[Fault], list[Phase]]:
    record = Record()
    pages = Pages(system, record, options.pages)
    subscribed = asyncio.Event()
    background = [
        asyncio.create_task(tap_hashes(system.ports.redis_url, record, subscribed)),
        asyncio.create_task(poll_watcher(system, record)),
        asyncio.create_task(poll_proxy(system, record)),
        asyncio.create_task(sample_processes(system, record, options.sample_every)),
    ]
    await pages.start()
    async with asyncio.timeout(system.settings.start_timeout):
        await subscribed.wait()  # the tap listens before the first hash
    record.started = time.time()
    plan = phases(options.seconds, options.phase)
    faults: list[Fault] = []
    background += [
        asyncio.create_task(pages.churn()),
        asyncio.create_task(_drive_load(pages, plan, record.started)),
        asyncio.create_task(_inject_faults(system, options, record.started, faults)),
    ]
    try:
        await _sleep_until(record.started + options.seconds)
    finally:
        for task in background:
            task.cancel()
        await asyncio.gather(*background, return_exceptions=True)
        await pages.close()
    return record, pages, faults, plan


def figures_of(observed: Observed) -> dict[str, Any]:
    options, record, shown, faults, plan = (
        observed.options,
        observed.record,
        observed.shown,
        observed.faults,
        observed.plan,
    )
    high, low, stabilization = observed.thresholds
    until = record.started + options.seconds
    lost = analysis.lost_times(record, shown)
    hashes = analysis.hash_loss(record, shown, lost, faults, until)
    hashes["elided_on_the_page"] = observed.elided
    recovered = analysis.recoveries(record, shown, lost, faults)
    watcher = analysis.decisions(
        record, phases=plan, faults=faults, high=high, low=low, stabilization=stabilization
    )
    procs = analysis.processes(record, options.warmup, options.judge_span)
    worst = [r.worst for r in recovered]
    slopes = {name: row["rss_slope_mb_per_hour"] for name, row in procs.items() if row["judged"]}
    checks = {
        "hashes lost outside outage windows": _check(hashes["lost_outside_windows"], 0),
        "faults recovered from within 10 s": _check(
            f"{sum(w is not None and w < RECOVERY_LIMIT for w in worst)}/{len(worst)}",
            f"{len(worst)}/{len(worst)}",
        ),
        "slowest recovery (s)": _check(
            None if None in worst else max((w for w in worst if w is not None), default=0.0),
            RECOVERY_LIMIT,
            below=True,
        ),
        "largest RSS growth after warm-up (MB/h)": _check(
            max(slopes.values(), default=None),
            RSS_GROWTH_LIMIT,
            below=True,
            note=", ".join(sorted(slopes)) or "no process lived long enough to judge",
        ),
        "flaps": _check(watcher["flaps"], 0),
        "missed bursts": _check(len(watcher["missed_bursts"]), 0),
    }
    return {
        "run": {
            "minutes": options.minutes,
            "frontends": options.frontends,
            "faults": len(faults),
            "pages": options.pages,
            "description": (
                f"{options.minutes:g} minutes, {options.frontends} frontend(s), "
                f"{len(faults)} faults, ~{options.pages} pages coming and going; load profile "
                f"{[p.rate for p in plan[:6]]} repeating every "
                f"{sum(p.end - p.start for p in plan[:6]):.0f} s; thresholds high {high:g} "
                f"low {low:g}, stabilization {stabilization:g} s"
            ),
        },
        "verdict": {"ok": all(c["ok"] for c in checks.values()), "checks": checks},
        "hashes": hashes,
        "faults": analysis.recovery_rows(recovered),
        "watcher": watcher,
        "processes": procs,
        "pages": {
            "slider_retries": record.slider_errors,
            "connect_failures": record.page_connect_failures,
        },
        "logs": count_logs(options.out / "state" / "logs"),
    }


def _check(value: Any, limit: Any, *, below: bool = False, note: str = "") -> dict[str, Any]:
    ok = value is not None and (value < limit if below else value == limit)
    return {"value": value, "limit": limit, "ok": ok, "note": note}


def soak(options: Options) -> dict[str, Any]:
    """Run it; returns the figures (also written with the report into options.out)."""
    system = System(soak_settings(options.frontends, options.out / "state"))
    try:
        system.start()
        record, pages, faults, plan = asyncio.run(drive(system, options))
    finally:
        system.stop()
    settings = system.settings
    observed = Observed(
        options=options,
        record=record,
        shown=analysis.delivered(pages.observer),
        elided=analysis.elided(pages.observer),
        faults=faults,
        plan=plan,
        thresholds=(settings.high, settings.low, settings.stabilization_window),
    )
    observed.save()
    return report_of(observed)


def report_of(observed: Observed) -> dict[str, Any]:
    """The figures, the plots and the report of a run (its own or one saved earlier)."""
    from soak import report

    figures = figures_of(observed)
    delivered_times = [p for p, _ in observed.shown.values()]
    picture = report.png(report.plots(observed.record, figures, delivered_times))
    out = observed.options.out
    figures["run"]["report"] = str(report.write(out, figures, picture).resolve())
    return figures
