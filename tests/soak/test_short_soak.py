"""The soak, short: two minutes of the moving load and pages coming and going, with one
fault of each kind. Every fault is recovered from, and no hash is lost outside the outage
windows the faults state. A short run cannot show slow memory growth; what it can show
is a leak per page: the frontend that is never restarted ends with about the fds it began with
plus the pages still open."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from soak.faults import ACTIONS
from soak.run import RECOVERY_LIMIT, Observed, Options, report_of, soak

# `./run soak` holds every recovery to RECOVERY_LIMIT (10 s) on a machine of its own. In the
# suite the other pytest worker runs an API server, istiod and Envoy on the same two cores: one
# CI run saw the watcher's /healthz first answer 200 10.25 s after a frontend SIGKILL, a fault
# the watcher does not depend on. The suite allows three times the limit, which still fails a
# component that does not come back, and its message says why the watcher was not ready.
SUITE_RECOVERY_LIMIT = 3 * RECOVERY_LIMIT

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
        + (
            f" (not ready: {'; '.join(f['watcher_unready_because'])})"
            if f["watcher_unready_because"]
            else ""
        )
        for f in faults
    )
    print(report)

    assert {f["kind"] for f in faults} == set(ACTIONS), report
    for fault in faults:
        assert fault["worst"] is not None, f"never recovered from {fault['kind']}:\n{report}"
        assert fault["worst"] < SUITE_RECOVERY_LIMIT, f"slow after {fault['kind']}:\n{report}"

    hashes = figures["hashes"]
    assert hashes["delivered"] > 500, hashes
    assert hashes["lost_outside_windows"] == 0, hashes

    frontend = figures["processes"]["frontend"]
    assert frontend["incarnations"] == 1, "the observer's frontend is never restarted"
    assert frontend["fds_last"] <= frontend["fds_first"] + OPTIONS.pages + 10, frontend

    page = (tmp_path / "soak.html").read_text()
    assert "data:image/png;base64," in page and "worker SIGKILL" in page
    assert "<th>watcher_unready_because</th>" in page

    # `./run soak --report-only` on what an older soak saved: a field since removed, one added.
    saved = tmp_path / "observed.json"
    older = orjson.loads(saved.read_bytes())
    del older["record"]["unready"]
    older["record"]["pages_connected"] = []
    saved.write_bytes(orjson.dumps(older))
    again = report_of(Observed.load(tmp_path))
    assert again["hashes"] == hashes
