"""The page's files: where they are, a clear stop when the npm-built ones are missing, and the
page rendered once at start."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

import jinja2

from istio_burst.core.server import StartupError

if TYPE_CHECKING:
    from istio_burst.frontend.settings import FrontendSettings

# Package data, found the way the installed package lays it out (StaticFiles and jinja2 want a
# directory on disk: a wheel installs one; a zipped package would not serve the page).
PACKAGE_DIR = Path(str(files("istio_burst.frontend")))
STATIC_DIR = PACKAGE_DIR / "static"
TEMPLATES_DIR = PACKAGE_DIR / "templates"
VENDOR_DIR = STATIC_DIR / "vendor"

# Written by services/frontend/build-assets.mjs from the npm registry (never committed).
VENDOR_FILES = ("bootstrap.min.css", "socket.io.min.js", "chart.umd.min.js")
# The page measures the primary/burst split over this many seconds of received hashes.
MEASURED_SPLIT_SECONDS = 10


class AssetsMissingError(StartupError):
    """The npm-built page assets are not where the frontend serves them from."""


def check_assets(vendor_dir: Path = VENDOR_DIR) -> None:
    missing = [name for name in VENDOR_FILES if not (vendor_dir / name).is_file()]
    if missing:
        raise AssetsMissingError(
            f"the page's assets are missing from {vendor_dir} ({', '.join(missing)}): "
            "run ./run setup (or, in services/frontend: npm ci && npm run build)"
        )


def render_page(settings: FrontendSettings) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["shortnum"] = lambda number: f"{number:g}"  # 100.0 -> 100
    return env.get_template("index.html").render(
        max_frequency=settings.max_frequency,
        frequency=settings.frequency,
        split_seconds=MEASURED_SPLIT_SECONDS,
    )
