"""Where the pinned kube-apiserver, kubectl and etcd are: built once by scripts/kube/build.sh."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "scripts" / "kube" / "build.sh"
NAMES = ("kube-apiserver", "kubectl", "etcd")


def kube_bin_dir() -> Path:
    """The folder holding the three binaries, building them first if the cache lacks them.

    ISTIO_BURST_KUBE_BIN names a folder of binaries built elsewhere (same versions) instead.
    """
    given = os.environ.get("ISTIO_BURST_KUBE_BIN")
    if given:
        folder = Path(given)
    else:
        done = subprocess.run(
            ["bash", str(BUILD_SCRIPT)], stdout=subprocess.PIPE, text=True, timeout=3600
        )
        if done.returncode != 0:
            raise RuntimeError(f"{BUILD_SCRIPT} failed (its output is above)")
        folder = Path(done.stdout.strip().splitlines()[-1])
    missing = [name for name in NAMES if not (folder / name).is_file()]
    if missing:
        raise RuntimeError(f"{folder} lacks {', '.join(missing)}")
    return folder
