"""Validating the `frequency` event a page sends: `{"freq": <number>}`, 0 <= freq <= max.

The value becomes the load driver's period, so anything but a plain number (or numeric string)
in range is refused, with a reason the page can show: an empty payload, null, NaN or a list must
never reach the driver as a zero or a tiny period.
"""

from __future__ import annotations

import math
import re
from typing import Any

# A plain decimal number as text ("12", "0.5", "1e2"); not "0x10", "1_000", "nan" or "inf".
_NUMERIC_TEXT = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


class FrequencyError(ValueError):
    """The payload is not a frequency the driver may run at; the message says why."""


def parse_frequency(payload: Any, maximum: float) -> float:
    if payload is None:
        raise FrequencyError('no payload: send {"freq": <requests per second>}')
    if not isinstance(payload, dict):
        raise FrequencyError(
            f'send an object {{"freq": <number>}}, not {_kind(payload)} {_show(payload)}'
        )
    if "freq" not in payload:
        raise FrequencyError('field "freq" is missing')
    raw = payload["freq"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise FrequencyError(f'"freq" must be a number, not {_kind(raw)}')
    if isinstance(raw, str):
        if not _NUMERIC_TEXT.fullmatch(raw.strip()):
            raise FrequencyError(f'"freq" {_show(raw)} is not a number')
        value = float(raw.strip())
    else:
        value = float(raw)
    if not math.isfinite(value):
        raise FrequencyError(f'"freq" must be a finite number, not {_show(raw)}')
    if value < 0:
        raise FrequencyError(f'"freq" {value:g} is negative; 0 stops the requests')
    if value > maximum:
        raise FrequencyError(f'"freq" {value:g} is over the maximum of {maximum:g} per second')
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "an object",
        list: "a list",
        bool: "a boolean",
        int: "a bare number",
        float: "a bare number",
        str: "a bare string",
    }.get(type(value), type(value).__name__)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
