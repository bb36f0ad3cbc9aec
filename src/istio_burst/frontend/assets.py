"""Where the page's files are, and a clear stop when the npm-built ones are missing."""

from __future__ import annotations

from pathlib import Path

from istio_burst.core.server import StartupError

PACKAGE_DIR = Path(__file__).parent
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
VENDOR_DIR = STATIC_DIR / "vendor"

# Written by services/frontend/build-assets.mjs from the npm registry (never committed).
VENDOR_FILES = ("bootstrap.min.css", "socket.io.min.js", "chart.umd.min.js")


class AssetsMissingError(StartupError):
    """The npm-built page assets are not where the frontend serves them from."""


def check_assets(vendor_dir: Path = VENDOR_DIR) -> None:
    missing = [name for name in VENDOR_FILES if not (vendor_dir / name).is_file()]
    if missing:
        raise AssetsMissingError(
            f"the page's assets are missing from {vendor_dir} ({', '.join(missing)}): "
            "run ./run setup (or, in services/frontend: npm ci && npm run build)"
        )
