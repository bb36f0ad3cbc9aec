"""Command-line flags generated from a settings class, so flags, env vars and --help agree."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from pydantic import ValidationError
from pydantic_core import PydanticUndefined

from istio_burst.core.settings import ServiceSettings

S = TypeVar("S", bound=ServiceSettings)


def add_settings_flags(
    parser: argparse.ArgumentParser, settings_cls: type[ServiceSettings]
) -> None:
    group = parser.add_argument_group(
        "settings", "each flag overrides its environment variable, which overrides .env"
    )
    env_prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    for name, field in settings_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        if field.default_factory is not None:
            default = "computed at start"
        else:
            default = field.default if field.default is not PydanticUndefined else "(required)"
        shown = repr(default) if default == "" else default
        help_text = f"{field.description or name} [env {env_prefix}{name.upper()}; default {shown}]"
        help_text = help_text.replace("%", "%%")  # argparse formats help with %
        if field.annotation is bool:
            group.add_argument(
                flag,
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=argparse.SUPPRESS,
                help=help_text,
            )
        else:
            group.add_argument(
                flag, dest=name, default=argparse.SUPPRESS, metavar=name.upper(), help=help_text
            )


def settings_from_args(
    parser: argparse.ArgumentParser, settings_cls: type[S], args: argparse.Namespace
) -> S:
    """Build settings from env/.env with flags on top; a bad value exits with a clear message."""
    overrides: dict[str, Any] = {
        name: getattr(args, name) for name in settings_cls.model_fields if hasattr(args, name)
    }
    try:
        return settings_cls(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']).upper() or 'settings'}: {err['msg']}"
            for err in exc.errors()
        )
        parser.error(f"invalid settings: {problems}")
