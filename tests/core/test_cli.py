"""`istio-burst <service> --help`: every setting as a flag, with its environment variable and its
default, for each of the four commands; URLs in the help have their passwords redacted."""

from __future__ import annotations

import importlib
import subprocess
from pathlib import Path

import pytest
from pydantic import Field

from harness.processes import ISTIO_BURST
from istio_burst.cli import COMMANDS
from istio_burst.core.cli_settings import parse_settings
from istio_burst.core.settings import ServiceSettings


@pytest.mark.parametrize("command", list(COMMANDS))
def test_help_shows_each_flag_with_its_variable_and_default(command: str, tmp_path: Path) -> None:
    settings_cls = importlib.import_module(f"istio_burst.{command}.main").Settings
    shown = subprocess.run(
        [ISTIO_BURST, command, "--help"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert shown.returncode == 0, shown.stderr
    text = "".join(shown.stdout.split())  # argparse wraps lines anywhere, even in a word
    prefix = str(settings_cls.model_config.get("env_prefix", "")).upper()
    for name, field in settings_cls.model_fields.items():
        flag = "--" + name.replace("_", "-")
        assert flag in text, flag
        assert f"[env:{prefix}{name.upper()}]" in text, name
        if field.default_factory is None and field.default is not None:
            default = "".join(str(field.default).split())
            assert f"(default:{default})" in text, (name, field.default)


class WithSecretDefault(ServiceSettings):
    cache_url: str = Field("redis://:hunter2@cache:6379/0", description="where the cache is")


def test_help_redacts_passwords_in_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_settings(WithSecretDefault, "istio-burst test", ["--help"])
    assert exited.value.code == 0
    shown = capsys.readouterr().out
    assert "redis://:***@cache:6379/0" in shown
    assert "hunter2" not in shown


def test_flags_env_and_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CACHE_URL", "redis://from-env:6379/0")
    assert parse_settings(WithSecretDefault, "t", []).cache_url == "redis://from-env:6379/0"
    flagged = parse_settings(WithSecretDefault, "t", ["--cache-url", "redis://flag:1/0"])
    assert flagged.cache_url == "redis://flag:1/0"
    with pytest.raises(SystemExit) as exited:
        parse_settings(WithSecretDefault, "t", ["--log-level", "LOUD"])
    assert exited.value.code == 2


def test_no_command_or_an_unknown_one_exits_2(tmp_path: Path) -> None:
    for argv in ([], ["nope"]):
        done = subprocess.run([ISTIO_BURST, *argv], cwd=tmp_path, capture_output=True, text=True)
        assert done.returncode == 2
        assert "worker" in done.stderr
