"""Every kind of Prometheus answer is classified, against a real Prometheus and a prom server.

Real Prometheus: numbers, empty results, NaN/Inf, several series and a PromQL syntax error (400)
come from real queries. A scripted HTTP server gives what a real one will not do on cue:
malformed JSON, unexpected shapes, 5xx, a hang past the timeout, an answer trickled a byte at a
time, a redirect, an oversized body, numbers Prometheus never writes; a closed port is
unreachable.
"""

from __future__ import annotations

import gzip
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from harness.exporter import LoadExporter
from harness.ports import free_port
from harness.prometheus import PrometheusServer
from istio_burst.core.contracts import FRONTEND_REQUESTS_METRIC
from istio_burst.watcher.fetch import MAX_BODY_BYTES
from istio_burst.watcher.health import BurstHealthCheck
from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.readings import ReadingKind
from tests.watcher.fake_http import Answer, ScriptedServer, vector

# The exporter stands in for any counter Prometheus scrapes: the reading's kinds do not depend
# on which one (the demo's query, HAProxy's counter, is tested in tests/proxy).
RATE = f"sum(rate({FRONTEND_REQUESTS_METRIC}[5s]))"


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    exporter = LoadExporter().start()
    exporter.set_rate(20, target="primary")
    exporter.set_rate(4, target="burst")
    server = PrometheusServer(tmp_path_factory.mktemp("prom"), {"frontend": [exporter.target]})
    server.start()
    try:
        server.wait_for_value(RATE, lambda v: v > 20, timeout=30)  # both series in the window
        yield server
    finally:
        server.stop()
        exporter.stop()


@pytest.fixture
async def source_for(prom: ScriptedServer) -> AsyncIterator[PrometheusSource]:
    source = PrometheusSource(prom.url, timeout=0.5)
    yield source
    await source.close()


@pytest.mark.parametrize(
    ("query", "kind"),
    [
        (RATE, ReadingKind.NUMBER),
        ('sum(rate(hashr_frontend_requests_total{target="nowhere"}[5s]))', ReadingKind.EMPTY),
        ("vector(0) / vector(0)", ReadingKind.NAN_INF),
        ("vector(1) / vector(0)", ReadingKind.NAN_INF),
        ("rate(hashr_frontend_requests_total[5s])", ReadingKind.MULTIPLE_SERIES),
        ("sum(rate(hashr_frontend_requests_total[5s]", ReadingKind.HTTP_ERROR),
        ("scalar(vector(3))", ReadingKind.NUMBER),
        ("hashr_frontend_requests_total[5s]", ReadingKind.MALFORMED),  # a range vector
    ],
)
async def test_real_prometheus_answers_are_classified(
    prometheus: PrometheusServer, query: str, kind: ReadingKind
) -> None:
    source = PrometheusSource(prometheus.url, timeout=2)
    try:
        reading = await source.read(query)
    finally:
        await source.close()
    assert reading.kind is kind, reading
    if kind is ReadingKind.NUMBER:
        assert reading.value is not None and reading.value > 0
    else:
        assert reading.value is None


async def test_real_prometheus_rate_is_the_exporters_rate(prometheus: PrometheusServer) -> None:
    source = PrometheusSource(prometheus.url, timeout=2)
    try:
        reading = await source.read(RATE)
    finally:
        await source.close()
    assert reading.value == pytest.approx(24, rel=0.2)


def _answer(status: int, doc: object) -> Answer:
    return Answer(status, orjson.dumps(doc))


@pytest.mark.parametrize(
    ("answer", "kind", "detail"),
    [
        (Answer(200, vector("17.5")), ReadingKind.NUMBER, ""),
        (Answer(200, vector()), ReadingKind.EMPTY, "no series"),
        (Answer(200, vector("NaN")), ReadingKind.NAN_INF, "NaN"),
        (Answer(200, vector("+Inf")), ReadingKind.NAN_INF, "Inf"),
        (Answer(200, vector("-Inf")), ReadingKind.NAN_INF, "Inf"),
        (Answer(200, vector("1", "2")), ReadingKind.MULTIPLE_SERIES, "2 series"),
        (Answer(200, b"{not json"), ReadingKind.MALFORMED, "not JSON"),
        (Answer(200, b"<html>proxy login</html>", "text/html"), ReadingKind.MALFORMED, "JSON"),
        (Answer(200, b""), ReadingKind.MALFORMED, "not JSON"),
        (_answer(200, []), ReadingKind.MALFORMED, "not a successful"),
        (_answer(200, {"status": "success"}), ReadingKind.MALFORMED, "no data"),
        (
            _answer(200, {"status": "success", "data": {"resultType": "matrix", "result": []}}),
            ReadingKind.MALFORMED,
            "matrix",
        ),
        (
            _answer(200, {"status": "success", "data": {"resultType": "vector", "result": [1]}}),
            ReadingKind.MALFORMED,
            "series",
        ),
        (
            _answer(
                200,
                {"status": "success", "data": {"resultType": "vector", "result": [{"value": 3}]}},
            ),
            ReadingKind.MALFORMED,
            "bad sample",
        ),
        (Answer(200, vector("many")), ReadingKind.MALFORMED, "no number"),
        (Answer(200, vector("-3")), ReadingKind.MALFORMED, "negative"),
        (
            _answer(400, {"status": "error", "errorType": "bad_data", "error": "parse error"}),
            ReadingKind.HTTP_ERROR,
            "HTTP 400: bad_data: parse error",
        ),
        (
            _answer(422, {"status": "error", "errorType": "execution", "error": "too many"}),
            ReadingKind.HTTP_ERROR,
            "HTTP 422",
        ),
        (Answer(500, b"internal"), ReadingKind.HTTP_ERROR, "HTTP 500: internal"),
        (Answer(503, b"", "text/plain"), ReadingKind.HTTP_ERROR, "HTTP 503"),
        (Answer(200, vector("5"), delay=1.5), ReadingKind.TIMEOUT, "Timeout"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
async def test_scripted_answers_are_classified(
    prom: ScriptedServer,
    source_for: PrometheusSource,
    answer: Answer,
    kind: ReadingKind,
    detail: str,
) -> None:
    prom.answer = answer
    reading = await source_for.read("up")
    assert reading.kind is kind, reading
    assert detail in reading.detail
    assert prom.paths[-1].startswith("/api/v1/query?query=up")
    if kind is ReadingKind.NUMBER:
        assert reading.value == 17.5


async def test_a_closed_port_is_unreachable(tmp_path: Path) -> None:
    source = PrometheusSource(f"http://127.0.0.1:{free_port()}", timeout=1)
    try:
        reading = await source.read("up")
    finally:
        await source.close()
    assert reading.kind is ReadingKind.UNREACHABLE
    assert "ConnectError" in reading.detail


async def test_a_url_that_is_no_url_is_unreachable_not_a_crash() -> None:
    source = PrometheusSource("not a url at all", timeout=1)
    try:
        reading = await source.read("up")
    finally:
        await source.close()
    assert reading.kind is ReadingKind.UNREACHABLE


@pytest.mark.parametrize(
    ("text", "value"),
    [("30", 30.0), ("1e3", 1000.0), ("2.5E-1", 0.25), (".5", 0.5), ("+3", 3.0), ("7.", 7.0)],
)
async def test_sample_values_in_prometheus_grammar_are_numbers(
    prom: ScriptedServer, source_for: PrometheusSource, text: str, value: float
) -> None:
    prom.answer = Answer(200, vector(text))
    reading = await source_for.read("up")
    assert (reading.kind, reading.value) == (ReadingKind.NUMBER, value)


@pytest.mark.parametrize(
    "text", ["3_0", " 30", "30 ", "infinity", "nan", "inf", "0x1e", "١٢", "30req", "1e", ""]
)
async def test_sample_values_prometheus_never_writes_are_malformed(
    prom: ScriptedServer, source_for: PrometheusSource, text: str
) -> None:
    # Python's float() reads "3_0" as 30 and "١٢" as 12; Prometheus writes neither.
    prom.answer = Answer(200, vector(text))
    reading = await source_for.read("up")
    assert reading.kind is ReadingKind.MALFORMED, reading
    assert "is no number" in reading.detail


async def test_a_redirect_is_a_redirect_not_its_body(
    prom: ScriptedServer, source_for: PrometheusSource
) -> None:
    prom.answer = Answer(302, vector("30"), headers={"Location": "http://elsewhere.test/q"})
    reading = await source_for.read("up")
    assert reading.kind is ReadingKind.REDIRECT, reading
    assert "HTTP 302 to http://elsewhere.test/q" in reading.detail
    assert len(prom.paths) == 1, "not followed"


async def test_a_body_over_the_cap_is_refused(
    prom: ScriptedServer, source_for: PrometheusSource
) -> None:
    padding = " " * MAX_BODY_BYTES  # valid JSON, just too much of it
    prom.answer = Answer(200, vector("5") + padding.encode())
    reading = await source_for.read("up")
    assert reading.kind is ReadingKind.MALFORMED, reading
    assert f"over {MAX_BODY_BYTES} bytes" in reading.detail


async def test_a_trickled_answer_times_out_within_the_query_timeout(
    prom: ScriptedServer,
) -> None:
    # ~250 bytes at one per 50 ms: no single read waits 1 s, the whole answer takes ~12 s.
    prom.answer = Answer(200, vector("5"), trickle=0.05)
    source = PrometheusSource(prom.url, timeout=1.0)
    started = time.monotonic()
    try:
        reading = await source.read("up")
    finally:
        await source.close()
    took = time.monotonic() - started
    assert reading.kind is ReadingKind.TIMEOUT, reading
    assert took < 1.0 + 1.0, f"the timeout bounds the whole query, took {took:.1f} s"


async def test_a_trickling_burst_health_url_is_unhealthy_within_the_timeout(
    prom: ScriptedServer, source_for: PrometheusSource
) -> None:
    prom.answer = Answer(200, b"ok", "text/plain", trickle=0.05)
    check = BurstHealthCheck(prom.url + "/_healthz", "", 0.2, source_for, timeout=1.0)
    started = time.monotonic()
    try:
        health = await check.check()
    finally:
        await check.close()
    took = time.monotonic() - started
    assert health.healthy is False
    assert "no answer within 1 s" in health.detail
    assert took < 1.0 + 1.0, f"the timeout bounds the whole check, took {took:.1f} s"


async def test_a_redirecting_burst_health_url_is_unhealthy(
    prom: ScriptedServer, source_for: PrometheusSource
) -> None:
    prom.answer = Answer(302, b"", headers={"Location": prom.url + "/elsewhere"})
    check = BurstHealthCheck(prom.url + "/_healthz", "", 0.2, source_for, timeout=1.0)
    try:
        health = await check.check()
    finally:
        await check.close()
    assert health.healthy is False
    assert "HTTP 302" in health.detail


async def test_a_compressed_bomb_is_never_inflated(
    prom: ScriptedServer, source_for: PrometheusSource
) -> None:
    # 64 MiB of JSON whitespace gzips to ~64 KiB; inflated, it would pass the cap only after
    # taking the memory. It is asked for uncompressed, so a gzip answer is just bytes: not JSON.
    bomb = gzip.compress(b" " * (64 * MAX_BODY_BYTES) + vector("30"))
    prom.answer = Answer(200, bomb, headers={"Content-Encoding": "gzip"})
    reading = await source_for.read("up")
    assert reading.kind is ReadingKind.MALFORMED, reading
    assert "not JSON" in reading.detail
