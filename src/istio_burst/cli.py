"""The `istio-burst` command: one subcommand per service, plus `demo` for the whole system."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from istio_burst.core.cli_settings import add_settings_flags, settings_from_args


@dataclass(frozen=True)
class Subcommand:
    name: str
    module: str  # exposes `Settings` and `run(settings) -> int | None`
    summary: str


SUBCOMMANDS = (
    Subcommand(
        "worker",
        "istio_burst.worker.main",
        'HTTP worker: POST / {"str": ...} hashes it and publishes PREFIX+hash on Redis',
    ),
    Subcommand(
        "frontend",
        "istio_burst.frontend.main",
        "web page with a frequency slider; drives the worker and streams hashes over socket.io",
    ),
    Subcommand(
        "watcher",
        "istio_burst.watcher.main",
        "reads the request rate from Prometheus; shifts worker traffic between primary and burst",
    ),
    Subcommand(
        "demo",
        "istio_burst.demo.main",
        "the whole system on this machine: redis, prometheus, two workers, frontend, watcher",
    ),
)


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istio-burst",
        description="String Hashr: cloud bursting with a service mesh. Settings come from "
        "environment variables, a .env file in the working directory, and flags.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    # Import only the chosen service (the watcher pulls in the kubernetes client, which is slow).
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for spec in SUBCOMMANDS:
        p = sub.add_parser(spec.name, help=spec.summary, description=spec.summary)
        if spec.name == chosen:
            module = importlib.import_module(spec.module)
            add_settings_flags(p, module.Settings)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(args_list)
    args = parser.parse_args(args_list)
    spec = next(s for s in SUBCOMMANDS if s.name == args.command)
    module = importlib.import_module(spec.module)
    settings = settings_from_args(parser, module.Settings, args)
    result = module.run(settings)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
