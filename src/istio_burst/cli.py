"""The `istio-burst` command: one subcommand per service, plus `demo` for the whole system."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from istio_burst.core.cli_settings import parse_settings

# Each is the package `istio_burst.<name>`, whose `main` module has `Settings` and
# `run(settings) -> int | None`. Only the chosen one is imported (the watcher's is slow).
COMMANDS = {
    "worker": 'HTTP worker: POST / {"str": ...} hashes it and publishes PREFIX+hash on Redis',
    "frontend": "web page with a frequency slider; drives the worker and streams hashes over "
    "socket.io",
    "watcher": "reads the request rate from Prometheus; shifts worker traffic between primary "
    "and burst (`watcher status`, `watcher override ...`: for a running watcher)",
    "demo": "the whole system on this machine: redis, prometheus, two workers, frontend, watcher",
}


def top_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="istio-burst",
        description="String Hashr: cloud bursting with a service mesh. Settings come from "
        "environment variables, a .env file in the working directory, and flags; "
        "`istio-burst <command> --help` lists them.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in COMMANDS.items():
        commands.add_parser(name, help=summary, add_help=False)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in COMMANDS:
        top_parser().parse_args(args[:1])  # prints usage or help, and exits
    name = args[0]
    service = importlib.import_module(f"istio_burst.{name}.main")
    # A service may have commands of its own: `istio-burst watcher status`.
    subcommands = getattr(service, "SUBCOMMANDS", {})
    if len(args) > 1 and args[1] in subcommands:
        return int(subcommands[args[1]](args[2:]))
    settings = parse_settings(service.Settings, f"istio-burst {name}", args[1:], COMMANDS[name])
    return int(service.run(settings) or 0)


if __name__ == "__main__":
    sys.exit(main())
