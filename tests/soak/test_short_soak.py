"""The soak, short: two minutes of the moving load and pages coming and going, with one
fault of each kind. Every fault is recovered from within 10 s, and no hash is lost outside the
outage windows the faults state. A short run cannot show slow memory growth; what it can show
is a leak per page: the frontend that is never restarted ends with about the fds it began with
plus the pages still open."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from soak.faults import ACTIONS
from soak.run import RECOVERY_LIMIT, Options, soak

OPTIONS = Options(
    minutes=2,
    frontends=2,
    fault_every=9,
    phase=15,
    pages=6,
    sample_every=2,
    warmup=30,
)


@pytest.mark.timeout(480)
def test_a_short_soak_recovers_from_every_fault_and_loses_nothing(tmp_path: Path) -> None:
    figures = soak(replace(OPTIONS, out=tmp_path))
    faults = figures["faults"]
    report = "\n".join(
        f"{f['kind']:<17} first hash {f['first_hash']} frequency {f['frequency_back']} "
        f"watcher {f['watcher_ready']}"
        for f in faults
    )
    print(report)

    assert {f["kind"] for f in faults} == set(ACTIONS), report
    for fault in faults:
        assert fault["worst"] is not None, f"never recovered from {fault['kind']}:\n{report}"
        assert fault["worst"] < RECOVERY_LIMIT, f"slow after {fault['kind']}:\n{report}"

    hashes = figures["hashes"]
    assert hashes["delivered"] > 500, hashes
    assert hashes["lost_outside_windows"] == 0, hashes

    frontend = figures["processes"]["frontend"]
    assert frontend["incarnations"] == 1, "the observer's frontend is never restarted"
    assert frontend["fds_last"] <= frontend["fds_first"] + OPTIONS.pages + 10, frontend

    page = (tmp_path / "soak.html").read_text()
    assert "data:image/png;base64," in page and "worker SIGKILL" in page
