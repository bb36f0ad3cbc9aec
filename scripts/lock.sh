#!/usr/bin/env bash
# Re-pin the Python dependencies with hashes (needs uv: `pip install uv`). Run from anywhere.
#
#   requirements.lock           everything: runtime, the istio extra and dev (./run installs it)
#   requirements/runtime.lock   the worker and frontend images: the runtime dependencies only
#   requirements/istio.lock     the watcher image: runtime + the Kubernetes client
#   requirements/build.lock     the build backend the Dockerfiles build the wheel with
#
# The three smaller locks are constrained by requirements.lock, so every image gets exactly the
# versions and hashes the tests ran with (tests/packaging/test_locks.py checks it). To move a
# version, change requirements.lock first (uv pip compile --upgrade-package NAME ...), then rerun.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
command -v uv >/dev/null 2>&1 || { echo "uv is missing: pip install uv" >&2; exit 1; }
compile() { uv pip compile --quiet --generate-hashes --python-version 3.11 "$@"; }
compile pyproject.toml --extra dev --extra istio -o requirements.lock
compile pyproject.toml -c requirements.lock -o requirements/runtime.lock
compile pyproject.toml --extra istio -c requirements.lock -o requirements/istio.lock
compile requirements/build.in -c requirements.lock -o requirements/build.lock
