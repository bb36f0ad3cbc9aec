"""`./run soak [--minutes N] [--frontends K]`: the system under load and faults; a report."""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from soak.run import Observed, Options, report_of, soak

# flag -> (type, help); each is a field of Options, whose default it shows.
FLAGS: dict[str, tuple[type, str]] = {
    "minutes": (float, "how long to run"),
    "frontends": (int, "frontend replicas (2 or more: one is killed in each round)"),
    "out": (Path, "where the report, its JSON and the system's logs go (the last run's replaced)"),
    "fault_every": (float, "seconds between the starts of two faults"),
    "phase": (float, "seconds of the load profile's base period"),
    "pages": (int, "pages that connect and leave"),
    "sample_every": (float, "seconds between samples of every process's RSS, CPU and fds"),
    "warmup": (float, "seconds before memory growth is judged"),
}

# What a run writes into --out; only these are removed before the next (--out may be shared).
OWNED = ("state", "observed.json", "soak.json", "soak.png", "soak.html")


def clear_last_run(out: Path) -> None:
    """Remove what an earlier run left in `out`, and nothing else that is there."""
    for name in OWNED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        else:
            path.unlink(missing_ok=True)


def parse(argv: list[str]) -> tuple[bool, Options]:
    parser = argparse.ArgumentParser(prog="./run soak", description=__doc__)
    defaults = Options()
    for name, (kind, what) in FLAGS.items():
        default = getattr(defaults, name)
        parser.add_argument(
            f"--{name.replace('_', '-')}", type=kind, default=default, help=f"{what} ({default})"
        )
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="make the report again from the run saved in --out; run nothing",
    )
    args = parser.parse_args(argv)
    if args.frontends < 1 or args.minutes <= 0:
        parser.error("--minutes must be positive and --frontends at least 1")
    return args.report_only, Options(**{name: getattr(args, name) for name in FLAGS})


def main(argv: list[str]) -> int:
    report_only, options = parse(argv)
    if report_only:
        figures = report_of(Observed.load(options.out))
    else:
        clear_last_run(options.out)
        print(f"soak: {options.minutes:g} minutes, report in {options.out}/soak.html", flush=True)
        figures = soak(options)
    checks = figures["verdict"]["checks"]
    width = max(len(name) for name in checks)
    for name, check in checks.items():
        mark = "ok  " if check["ok"] else "FAIL"
        print(f"{mark} {name:<{width}}  {check['value']}  (limit {check['limit']})")
    for fault in figures["faults"]:
        print(
            f"     {fault['at']:>7.1f} s  {fault['kind']:<17} first hash {fault['first_hash']}"
            f"  frequency {fault['frequency_back']}  watcher {fault['watcher_ready']}"
            f"  lost inside {fault['lost_inside']}"
        )
    print(f"report: {figures['run']['report']}")
    return 0 if figures["verdict"]["ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
