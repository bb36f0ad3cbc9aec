"""Asking Prometheus for one number, and saying precisely what came back instead of one."""

from __future__ import annotations

import math
from typing import Any

import httpx
import orjson

from istio_burst.core.redis import describe_error
from istio_burst.watcher.readings import Reading, ReadingKind


def classify(status: int, body: bytes) -> Reading:
    """Turn one `/api/v1/query` response into a Reading. Never raises."""
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
    try:
        value = float(pair[1])
    except ValueError:
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
    """Runs one PromQL expression against `/api/v1/query`, bounded by a timeout."""

    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.AsyncClient(timeout=timeout)

    async def read(self, query: str) -> Reading:
        try:
            response = await self._client.get(
                f"{self.base_url}/api/v1/query", params={"query": query}
            )
        except httpx.TimeoutException as exc:
            return Reading(ReadingKind.TIMEOUT, detail=f"{type(exc).__name__} at {self.base_url}")
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            detail = f"{self.base_url}: {describe_error(exc)}"
            return Reading(ReadingKind.UNREACHABLE, detail=detail)
        return classify(response.status_code, response.content)

    async def close(self) -> None:
        await self._client.aclose()
