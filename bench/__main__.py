"""Every benchmark, one table: `./run bench` (or `.venv/bin/python -m bench`).

`python -m bench worker pacing` runs only those. Each module's `main()` returns table rows; the
durations each uses are set by its own environment variables (see the module docstrings).
"""

from __future__ import annotations

import importlib
import sys
import traceback

from bench.table import Row, print_table

BENCHMARKS = ("worker", "transport", "pacing", "latency", "fanout", "watcher", "scaleout")


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHMARKS)
    unknown = sorted(set(chosen) - set(BENCHMARKS))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
        return 2
    rows: list[Row] = []
    failed = 0
    for name in chosen:
        print(f"== {name}", file=sys.stderr, flush=True)
        try:
            rows.extend(importlib.import_module(f"bench.{name}").main())
        except Exception:  # one broken benchmark must not hide the others' figures
            failed += 1
            traceback.print_exc()
            rows.append(Row(name, "error", "failed: see the trace above"))
    print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
