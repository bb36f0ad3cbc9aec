"""Binaries built from pinned Go modules by a script under scripts/, cached outside the repo."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def go_built(build_script: Path, names: tuple[str, ...], override_env: str) -> Path:
    """The folder holding `names`, running `build_script` first (it builds only if its cache
    lacks them and prints the folder last). `$override_env` names a folder of binaries built
    elsewhere (the same versions) instead."""
    given = os.environ.get(override_env)
    if given:
        folder = Path(given)
    else:
        done = subprocess.run(
            ["bash", str(build_script)], stdout=subprocess.PIPE, text=True, timeout=3600
        )
        if done.returncode != 0:
            raise RuntimeError(f"{build_script} failed (its output is above)")
        folder = Path(done.stdout.strip().splitlines()[-1])
    missing = [name for name in names if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"{folder} lacks {', '.join(missing)}")
    return folder
