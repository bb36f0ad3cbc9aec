"""`istio-burst <service>` flags from a settings class, by pydantic-settings' own CLI support.

Each setting is a kebab-case flag; --help shows its description, default and environment
variable; flags override environment variables, which override `.env`. URLs in the help text
pass through `redact_url`, so a default with a password never shows it.

Why `CliApp.run` per service and not one root model with `CliSubCommand` fields: a subcommand's
settings are still read from their own variables (PORT, DEMO_...), but its --help shows only the
root's nested names (WORKER__PORT), or none (pydantic-settings 2.16).
"""

from __future__ import annotations

import argparse
import re
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import CliApp, CliSettingsSource

from istio_burst.core.settings import ServiceSettings, redact_url

S = TypeVar("S", bound=ServiceSettings)

_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")


class _RedactingParser(argparse.ArgumentParser):
    def format_help(self) -> str:
        return _URL.sub(lambda url: redact_url(url.group()), super().format_help())


def parse_settings(settings_cls: type[S], prog: str, args: list[str], summary: str = "") -> S:
    """Settings from flags, env and .env; --help prints and exits 0, a bad value exits 2."""
    parser = _RedactingParser(
        prog=prog,
        description=summary + "\n\nEach flag overrides its environment variable, which "
        "overrides .env in the working directory.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source: CliSettingsSource[argparse.ArgumentParser] = CliSettingsSource(
        settings_cls,
        root_parser=parser,
        cli_show_env_vars=True,
        cli_kebab_case=True,
        cli_implicit_flags=True,
        cli_hide_none_type=True,
    )
    try:
        return CliApp.run(settings_cls, cli_args=args, cli_settings_source=source)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        parser.error(f"invalid settings: {problems}")
