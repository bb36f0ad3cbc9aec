"""Where the pinned istioctl and pilot-discovery are: built once by scripts/istio-binaries."""

from __future__ import annotations

from pathlib import Path

from harness.go_built import go_built

BUILD_SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "istio-binaries" / "build.sh"
NAMES = ("istioctl", "pilot-discovery")


def istio_bin_dir() -> Path:
    """The folder with both binaries (ISTIO_BURST_ISTIO_BIN: one built elsewhere instead)."""
    return go_built(BUILD_SCRIPT, NAMES, "ISTIO_BURST_ISTIO_BIN")
