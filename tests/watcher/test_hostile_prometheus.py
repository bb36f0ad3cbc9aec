"""Answers a real Prometheus never gives must never move the weights, and a Prometheus that
trickles its answer must not blind the watcher: the query times out, /status says so, and the
fail-safe runs. The VirtualService is on the real API server (harness.kube)."""

from __future__ import annotations

from typing import Any

import pytest

from harness.kube.front import KubeFront
from harness.metrics import metric_value
from harness.watcher import StartWatcher, status, wait_status
from tests.watcher.fake_http import Answer, ScriptedServer, vector
from tests.watcher.rounds import load, next_round


@pytest.mark.parametrize(
    "answer",
    [
        Answer(302, vector("30"), headers={"Location": "http://elsewhere.test/api/v1/query"}),
        Answer(200, vector("3_0")),
        Answer(200, vector(" 30")),
    ],
    ids=["redirect-with-a-success-body", "3_0", "leading-space"],
)
async def test_readings_prometheus_never_gives_do_not_move_the_weights(
    kube: KubeFront, prom: ScriptedServer, make_watcher: Any, answer: Answer
) -> None:
    watcher = make_watcher()
    load(prom, 3)
    await next_round(watcher)
    prom.answer = answer  # each would read as 30 req/s, above HIGH (15)
    for _ in range(4):
        await next_round(watcher)
    assert kube.patches() == []
    assert kube.weights() == (100, 0)
    assert watcher.state.reading is None
    assert watcher.state.reading_kind in ("redirect", "malformed")

    load(prom, 30)  # a real reading still moves them: the watcher was not stuck
    await next_round(watcher)
    assert kube.weights() == (0, 100)


def test_a_trickling_prometheus_times_out_shows_it_and_the_outage_policy_runs(
    kube: KubeFront, prom: ScriptedServer, kube_watcher: StartWatcher
) -> None:
    load(prom, 30)
    proc, url = kube_watcher(
        QUERY_TIMEOUT="1", OUTAGE_POLICY="primary", OUTAGE_AFTER="2", MAX_FAILURES="3"
    )
    wait_status(proc, url, lambda s: s["weights"]["burst"] == 100)
    assert kube.weights() == (0, 100)

    prom.answer = Answer(200, vector("30"), trickle=0.05)  # ~12 s for the whole answer
    blind = wait_status(proc, url, lambda s: s["reading_kind"] == "timeout")
    assert blind["reading"] is None, "an old reading is not shown as current"
    assert "within 1 s" in blind["reading_detail"]

    safe = wait_status(proc, url, lambda s: s["weights"] == {"primary": 100, "burst": 0})
    assert kube.weights() == (100, 0), "fail-safe: everything back to primary"
    assert safe["ready"] is False and "bad readings in a row" in safe["not_ready_reason"]
    assert metric_value(url, "hashr_watcher_read_errors_total", kind="timeout") >= 3

    # Rounds go on (the state is fresh), and readings come back once Prometheus does.
    first = status(url)["at"]
    wait_status(proc, url, lambda s: s["at"] > first)
    load(prom, 3)
    wait_status(proc, url, lambda s: s["ready"] and s["reading_kind"] == "number")
