"""Errors and warnings in every component's log, counted by kind.

The services log JSON lines (`level`, `msg`); redis-server, Prometheus and HAProxy log text, where
a line is a warning or an error by its own markers. A kind is the message with its numbers,
addresses and ids taken out, so the same event counts as one kind however often it happens.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import orjson

SERIOUS = {"warning", "error", "critical"}
# Prometheus (logfmt or slog), redis-server ('#' marks a warning) and HAProxy's own markers.
TEXT_LEVEL = re.compile(
    r"level=(?P<level>warn|error)\w*|\s#\s|\[(?P<haproxy>WARNING|ALERT|NOTICE)\]", re.IGNORECASE
)
# HAProxy logs only the requests that were not normal (`option dontlog-normal`): failed, or
# retried; one line each with the server, the status and the termination state (`SC--`: the
# server refused the connection).
HAPROXY_FAILED_REQUEST = re.compile(
    r"\] \S+ (?P<server>\S+/\S+) [-\d/]+ (?P<status>-?\d+) [-+\d]+ \S+ \S+ (?P<term>\S{4}) "
)
VARIABLE = re.compile(r"0x[0-9a-f]+|\b[0-9a-f]{8,}\b|\d+(\.\d+)?")


def kind_of(text: str) -> str:
    return VARIABLE.sub("N", text).strip()[:120]


def count_log(path: Path) -> Counter[str]:
    """`level: kind` -> occurrences in one log."""
    found: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                entry = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            level = str(entry.get("level", ""))
            if level in SERIOUS:
                found[f"{level}: {kind_of(str(entry.get('msg', '')))}"] += 1
            continue
        if failed := HAPROXY_FAILED_REQUEST.search(line):
            server, status, term = failed.group("server", "status", "term")
            level = "warning" if 0 < int(status) < 500 else "error"
            found[f"{level}: request not normal: {server} {status} {term}"] += 1
            continue
        match = TEXT_LEVEL.search(line)
        if match is None:
            continue
        level = (match.group("level") or match.group("haproxy") or "warning").lower()
        message = re.sub(r'^.*?(msg="?)', "", line) if "msg=" in line else line[match.end() :]
        found[f"{level}: {kind_of(message)}"] += 1
    return found


def count_logs(log_dir: Path) -> dict[str, dict[str, int]]:
    """component -> {kind: count}, for every log in `log_dir`."""
    return {
        path.stem: dict(count_log(path).most_common()) for path in sorted(log_dir.glob("*.log"))
    }
