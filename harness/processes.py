"""The tests' side of the process runner (`istio_burst.demo.processes`, shared with the demo and
the benchmarks): where the `istio-burst` command is, and a clear stop when a program is missing."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from istio_burst.demo.processes import ManagedProcess

__all__ = ["ISTIO_BURST", "ManagedProcess", "require_binary"]

VENV_BIN = Path(sys.executable).parent
ISTIO_BURST = (
    str(VENV_BIN / "istio-burst") if (VENV_BIN / "istio-burst").exists() else "istio-burst"
)


def require_binary(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(
            f"{name} is not installed: run the tests through ./run test, which installs it"
        )
    return path
