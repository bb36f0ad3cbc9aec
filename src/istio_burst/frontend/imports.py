"""Failed imports are not cached by Python: a library that retries one per call pays each time."""

from __future__ import annotations

import importlib.util
import sys


def remember_missing(module: str) -> None:
    """If `module` is not installed, make every later `import module` fail at once.

    A None entry in sys.modules is Python's documented way to say "this import fails"; nothing
    changes when the module is installed.
    """
    if module not in sys.modules and importlib.util.find_spec(module) is None:
        sys.modules[module] = None  # type: ignore[assignment]
