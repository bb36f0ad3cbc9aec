"""Where the page's files are, and a clear stop when the npm-built ones are missing."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from istio_burst.core.server import StartupError

# Package data, found the way the installed package lays it out (StaticFiles and jinja2 want a
# directory on disk: a wheel installs one; a zipped package would not serve the page).
PACKAGE_DIR = Path(str(files("istio_burst.frontend")))
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
