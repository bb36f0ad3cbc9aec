"""Every kind of Prometheus answer is classified, against a real Prometheus and a scripted server.

Real Prometheus: numbers, empty results, NaN/Inf, several series and a PromQL syntax error (400)
come from real queries. A scripted HTTP server gives what a real one will not do on cue:
malformed JSON, unexpected shapes, 5xx, a hang past the timeout; a closed port is unreachable.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import orjson
import pytest

from istio_burst.watcher.prometheus import PrometheusSource
from istio_burst.watcher.readings import ReadingKind
from tests.support.exporter import LoadExporter
from tests.support.ports import free_port
from tests.support.prometheus import PrometheusServer
from tests.watcher.fake_http import Answer, ScriptedServer, vector

RATE = 'sum(rate(hashr_frontend_requests_total{outcome!="skipped"}[5s]))'


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
def scripted() -> Iterator[ScriptedServer]:
    server = ScriptedServer().start()
    yield server
    server.stop()


@pytest.fixture
async def source_for(scripted: ScriptedServer) -> AsyncIterator[PrometheusSource]:
    source = PrometheusSource(scripted.url, timeout=0.5)
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
    scripted: ScriptedServer,
    source_for: PrometheusSource,
    answer: Answer,
    kind: ReadingKind,
    detail: str,
) -> None:
    scripted.answer = answer
    reading = await source_for.read("up")
    assert reading.kind is kind, reading
    assert detail in reading.detail
    assert scripted.paths[-1].startswith("/api/v1/query?query=up")
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
