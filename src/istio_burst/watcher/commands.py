"""`istio-burst watcher status` and `istio-burst watcher override`: for people at a terminal.

`status` reads a running watcher's /status and /decisions and prints a short table.
`override` sets or clears the local override on Redis, where a local watcher reads it each round
(in Kubernetes, annotate the routed object instead: see the README).

Both take their addresses from flags, else from `--env-file` (the demo writes one with its
Redis password: the demo's Redis is not reachable without it), else from the environment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from dotenv import dotenv_values

from istio_burst.core.contracts import DecisionRecord, OverrideTarget, WatcherState
from istio_burst.core.redis import REDIS_DOWN_ERRORS, describe_error
from istio_burst.core.settings import normalize_redis_url, redact_url
from istio_burst.watcher.local_overrides import clear_override, set_override
from istio_burst.watcher.overrides import summary
from istio_burst.watcher.words import clock_words, weights_words

_DURATION = re.compile(r"^(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """`90s`, `10m`, `1h30m` or plain seconds."""
    text = text.strip()
    if text.isdigit():
        return timedelta(seconds=int(text))
    found = _DURATION.match(text)
    if not text or found is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration such as 90s, 10m or 1h30m")
    hours, minutes, seconds = (int(g or 0) for g in found.groups())
    duration = timedelta(hours=hours, minutes=minutes, seconds=seconds)
    if not duration:
        raise argparse.ArgumentTypeError("the duration must be longer than 0 s")
    return duration


def _time(unix: float | None) -> str:
    return clock_words(unix) if unix else "-"


def status_table(state: WatcherState, records: list[DecisionRecord]) -> str:
    reading = "-" if state.reading is None else f"{state.reading:g} req/s"
    if state.reading_error_kind is not None:
        reading += f" (no usable reading: {state.reading_error_kind})"
    thresholds = ", ".join(f"{k} {v:g}" for k, v in state.thresholds.items())
    ready = "yes" if state.ready else f"no: {state.not_ready_reason}"
    lines = [
        f"role       {state.role}    ready {ready}    at {_time(state.at)} UTC",
        f"target     {state.actuator}: {state.target}" + (" (dry run)" if state.dry_run else ""),
        f"mode       {state.mode}    thresholds {thresholds}",
        f"reading    {reading}",
        f"weights    primary {state.weights.get('primary')} / burst {state.weights.get('burst')}"
        f"    decision {state.decision} ({state.reason or '-'})",
        f"override   {summary(state.override) if state.override else 'none'}"
        + (f"    refused: {state.override_problem}" if state.override_problem else ""),
        f"outage     {'since ' + _time(state.outage_since) if state.outage_since else 'none'}"
        f"    policy {state.outage_policy}",
    ]
    if state.actuator_error_kind is not None:
        lines.append(f"error      {state.actuator_error_kind}: {state.actuator_error}")
    lines.append("")
    if not records:
        lines.append("no decisions recorded yet")
        return "\n".join(lines)
    rows = [("TIME", "REASON", "WEIGHTS", "OUTCOME", "N", "DETAIL")]
    for r in records:
        weights = weights_words(r.before)
        if r.after != r.before:
            weights += f" -> {weights_words(r.after)}"
        outcome = str(r.outcome) + (f" ({r.error_kind})" if r.error_kind else "")
        rows.append((_time(r.at), str(r.reason), weights, outcome, str(r.count), r.detail))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)]
        lines.append("  ".join([*cells, row[5]]).rstrip())
    return "\n".join(lines)


def _env_file_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument(
        "--env-file",
        type=Path,
        help="KEY=VALUE lines (REDIS_URL, WATCHER_URL) that take the place of the environment; "
        "the demo writes one: <state dir>/watcher.env",
    )
    return parser


def _settings_env(args: Sequence[str]) -> dict[str, str]:
    """The environment, with the --env-file's values over it (read before the defaults are)."""
    env_file = _env_file_parser().parse_known_args(args)[0].env_file
    env = dict(os.environ)
    if env_file is not None:
        if not env_file.is_file():
            raise SystemExit(f"error: --env-file {env_file}: no such file")
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    return env


def status(args: Sequence[str]) -> int:
    env = _settings_env(args)
    parser = argparse.ArgumentParser(
        prog="istio-burst watcher status",
        description="The state and last decisions of a running watcher.",
        parents=[_env_file_parser()],
    )
    parser.add_argument(
        "--url",
        default=env.get("WATCHER_URL", "http://localhost:8090"),
        help="the watcher's base URL (env WATCHER_URL; default %(default)s)",
    )
    parser.add_argument("--limit", type=int, default=10, help="decisions shown (default 10)")
    options = parser.parse_args(args)
    base = options.url.rstrip("/")
    try:
        with httpx.Client(timeout=5) as http:
            state_answer = http.get(base + "/status")
            state_answer.raise_for_status()
            ledger = http.get(base + "/decisions", params={"limit": max(1, options.limit)})
            ledger.raise_for_status()
    except httpx.HTTPError as exc:
        print(
            f"cannot read the watcher at {redact_url(base)}: {describe_error(exc)}", file=sys.stderr
        )
        return 1
    state = WatcherState.model_validate_json(state_answer.content)
    records = [DecisionRecord.model_validate(r) for r in ledger.json()["decisions"]]
    print(status_table(state, records))
    return 0


def override(args: Sequence[str]) -> int:
    env = _settings_env(args)
    parser = argparse.ArgumentParser(
        prog="istio-burst watcher override",
        description="Pin the traffic to primary or burst, or pause the watcher (it writes "
        "nothing), until cleared or for a while; `clear` ends it. For a local watcher: the "
        "override is kept on its Redis. In Kubernetes, annotate the routed object instead.",
        parents=[_env_file_parser()],
    )
    parser.add_argument("target", choices=[*(t.value for t in OverrideTarget), "clear"])
    parser.add_argument(
        "--for", dest="duration", type=parse_duration, help="how long, e.g. 90s, 10m, 1h30m"
    )
    parser.add_argument(
        "--redis-url",
        default=env.get("REDIS_URL", "localhost:6379"),
        help="the watcher's Redis (env REDIS_URL; default localhost:6379)",
    )
    options = parser.parse_args(args)
    try:
        url = normalize_redis_url(options.redis_url)
    except ValueError as exc:
        parser.error(str(exc))
    if options.target == "clear" and options.duration is not None:
        parser.error("clear takes no --for")
    try:
        if options.target == "clear":
            had = asyncio.run(clear_override(url))
            print("override cleared" if had else "there was no override")
            return 0
        until = datetime.now(UTC) + options.duration if options.duration else None
        asyncio.run(set_override(url, OverrideTarget(options.target), until))
    except REDIS_DOWN_ERRORS as exc:
        print(f"cannot reach redis at {redact_url(url)}: {describe_error(exc)}", file=sys.stderr)
        return 1
    ends = f" until {until.isoformat(timespec='seconds')}" if until else " until cleared"
    print(f"override {options.target}{ends}: the watcher applies it within one round")
    return 0


SUBCOMMANDS: dict[str, Callable[[Sequence[str]], int]] = {"status": status, "override": override}
