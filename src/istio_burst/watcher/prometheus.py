"""Asking Prometheus for one number, and saying precisely what came back instead of one."""

from __future__ import annotations

import math
import re
from typing import Any

import httpx
import orjson

from istio_burst.core.redis import describe_error
from istio_burst.core.settings import redact_url
from istio_burst.watcher.fetch import BodyTooLargeError, bounded_get
from istio_burst.watcher.readings import Reading, ReadingKind

# A sample value as Prometheus writes it (Go's FormatFloat, or NaN / +Inf / -Inf): decimal digits
# with an optional fraction and exponent. Python's float() also takes "3_0", " 30", "infinity"
# and non-ASCII digits; Prometheus never sends those, so they are malformed, not numbers.
SAMPLE_VALUE = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]?Inf")


def parse_sample_value(text: str) -> float | None:
    """The float Prometheus meant by `text`, or None when Prometheus would not write it so."""
    return float(text) if SAMPLE_VALUE.fullmatch(text) else None


def classify(status: int, body: bytes, location: str = "") -> Reading:
    """Turn one `/api/v1/query` response into a Reading. Never raises."""
    if 300 <= status < 400:
        where = f" to {redact_url(location)[:200]}" if location else ""
        return Reading(ReadingKind.REDIRECT, detail=f"HTTP {status}{where}: not followed")
    if status >= 400:
        return Reading(ReadingKind.HTTP_ERROR, detail=f"HTTP {status}: {_error_text(body)}")
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        return Reading(ReadingKind.MALFORMED, detail=f"not JSON: {exc}")
    if not isinstance(doc, dict) or doc.get("status") != "success":
        return Reading(ReadingKind.MALFORMED, detail=f"not a successful query: {_cut(body)}")
    data = doc.get("data")
    if not isinstance(data, dict):
        return Reading(ReadingKind.MALFORMED, detail="no data object")
    return _result(data.get("resultType"), data.get("result"))


def _result(result_type: Any, result: Any) -> Reading:
    if result_type == "scalar":
        return _sample(result)
    if result_type != "vector" or not isinstance(result, list):
        return Reading(
            ReadingKind.MALFORMED,
            detail=f"expected an instant vector or scalar, got {result_type!r:.40}",
        )
    if not result:
        return Reading(ReadingKind.EMPTY, detail="no series matched")
    if len(result) > 1:
        return Reading(
            ReadingKind.MULTIPLE_SERIES,
            detail=f"{len(result)} series; wrap the query in sum(...)",
        )
    series = result[0]
    if not isinstance(series, dict):
        return Reading(ReadingKind.MALFORMED, detail="series is not an object")
    return _sample(series.get("value"))


def _sample(pair: Any) -> Reading:
    """A Prometheus sample is [unix_time, "value as string"]."""
    if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[1], str):
        return Reading(ReadingKind.MALFORMED, detail=f"bad sample {pair!r:.80}")
    value = parse_sample_value(pair[1])
    if value is None:
        return Reading(ReadingKind.MALFORMED, detail=f"sample value {pair[1]!r:.40} is no number")
    if math.isnan(value) or math.isinf(value):
        return Reading(ReadingKind.NAN_INF, detail=pair[1])
    if value < 0:
        return Reading(ReadingKind.MALFORMED, detail=f"negative value {value:g}")
    return Reading(ReadingKind.NUMBER, value=value)


def _error_text(body: bytes) -> str:
    try:
        doc = orjson.loads(body)
    except orjson.JSONDecodeError:
        return _cut(body)
    if isinstance(doc, dict) and "error" in doc:
        return f"{doc.get('errorType', 'error')}: {doc['error']}"[:300]
    return _cut(body)


def _cut(body: bytes) -> str:
    return body[:200].decode("utf-8", "replace")


class PrometheusSource:
    """Runs one PromQL expression against `/api/v1/query`, the whole query bounded by `timeout`."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = redact_url(self.base_url)  # for details, which reach logs and pages
        self.timeout = timeout
        self._client = httpx.AsyncClient(timeout=timeout)

    async def read(self, query: str) -> Reading:
        url = f"{self.base_url}/api/v1/query"
        try:
            response = await bounded_get(
                self._client, url, params={"query": query}, deadline=self.timeout
            )
        except (TimeoutError, httpx.TimeoutException):
            detail = f"Timeout: no complete answer within {self.timeout:g} s from {self.shown_url}"
            return Reading(ReadingKind.TIMEOUT, detail=detail)
        except BodyTooLargeError as exc:
            return Reading(ReadingKind.MALFORMED, detail=f"{self.shown_url}: {exc}")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            detail = f"{self.shown_url}: {redact_url(describe_error(exc))}"
            return Reading(ReadingKind.UNREACHABLE, detail=detail)
        return classify(response.status, response.body, response.location)

    async def close(self) -> None:
        await self._client.aclose()
