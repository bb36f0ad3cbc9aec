"""Every bad request the issue names gets a 4xx JSON error that says what is wrong.

Never a 5xx, never a hang (each request is bounded by the client timeout), the process stays up
and keeps serving, nothing is published, and /metrics counts the answer by its status.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.worker.conftest import RunningWorker, Subscriber

LIMIT = 64 * 1024


def chunks_of(body: bytes, size: int = 8192) -> Iterator[bytes]:
    """A body httpx sends with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


@dataclass
class Case:
    name: str
    status: int
    detail: str  # words the error must contain
    method: str = "POST"
    path: str = "/"
    request: dict[str, Any] = field(default_factory=dict)


JSON = {"content-type": "application/json"}
OVERSIZED = b'{"str": "' + b"a" * LIMIT + b'"}'

CASES = [
    Case("no body", 400, "empty body", request={"headers": JSON}),
    Case("no body, no content type", 400, "empty body"),
    Case("not JSON", 400, "not valid UTF-8 JSON", request={"content": b"hello", "headers": JSON}),
    Case("truncated JSON", 400, "not valid", request={"content": b'{"str": "ab', "headers": JSON}),
    Case(
        "invalid UTF-8",
        400,
        "UTF-8",
        request={"content": b'{"str": "caf\xe9 \xff"}', "headers": JSON},
    ),
    Case("str missing", 422, '"str" is missing', request={"json": {"text": "abc"}}),
    Case("empty object", 422, '"str" is missing', request={"json": {}}),
    Case("str null", 422, "not null", request={"json": {"str": None}}),
    Case("str number", 422, "not a number", request={"json": {"str": 42}}),
    Case("str boolean", 422, "not a boolean", request={"json": {"str": True}}),
    Case("str array", 422, "not an array", request={"json": {"str": ["a"]}}),
    Case(
        "str is the original's 3.5 s blocker",
        422,
        "not an object",
        request={"json": {"str": {"length": 10_000_000}}},
    ),
    Case("a JSON array", 422, "not an array", request={"json": [{"str": "abc"}]}),
    Case("a JSON string", 422, "not a string", request={"json": "abc"}),
    Case("JSON null", 422, "not null", request={"content": b"null", "headers": JSON}),
    Case(
        "form, urlencoded",
        415,
        "application/x-www-form-urlencoded",
        request={"data": {"str": "abc"}},
    ),
    Case(
        "form, multipart",
        415,
        "multipart/form-data",
        request={"files": {"str": ("s.txt", b"abc")}},
    ),
    Case(
        "JSON sent as text/plain",
        415,
        "text/plain",
        request={"content": b'{"str": "abc"}', "headers": {"content-type": "text/plain"}},
    ),
    Case(
        "over the limit, with Content-Length",
        413,
        "limit is 65536",
        request={"content": OVERSIZED, "headers": JSON},
    ),
    Case(
        "over the limit, chunked",
        413,
        "limit of 65536",
        request={"content": chunks_of(OVERSIZED), "headers": JSON},
    ),
    Case(
        "far over the limit, with Content-Length",
        413,
        "limit is 65536",
        request={"content": b"x" * (4 * 1024 * 1024), "headers": JSON},
    ),
    Case("unknown path", 404, "Not Found", path="/hash", request={"json": {"str": "abc"}}),
    Case("unknown path, GET", 404, "Not Found", method="GET", path="/nope"),
    Case("wrong method on /", 405, "Method Not Allowed", method="PUT", request={"json": {}}),
    Case("DELETE /", 405, "Method Not Allowed", method="DELETE"),
    Case("POST /_healthz", 405, "Method Not Allowed", path="/_healthz"),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_request_gets_a_json_4xx_and_the_worker_carries_on(
    case: Case, shared_worker: RunningWorker, subscriber: Subscriber
) -> None:
    counted_before = shared_worker.requests_with_status(case.status)

    response = shared_worker.http.request(case.method, case.path, **case.request)

    assert response.status_code == case.status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()
    assert set(error) == {"error", "detail"}
    assert case.detail in error["detail"], error
    assert shared_worker.proc.alive()
    assert shared_worker.requests_with_status(case.status) == counted_before + 1

    # Still serving, and the bad request published nothing: the next message is the good one.
    good = shared_worker.http.post("/", json={"str": "still here"})
    assert good.status_code == 200
    assert subscriber.next() == good.content


def test_errors_name_the_json_type_they_got(shared_worker: RunningWorker) -> None:
    answers = {
        kind: shared_worker.http.post("/", json={"str": value}).json()["detail"]
        for kind, value in {"an object": {}, "a number": 1.5, "null": None}.items()
    }
    for kind, detail in answers.items():
        assert detail == f'field "str" must be a string, not {kind}'


def test_a_body_at_the_limit_is_accepted(shared_worker: RunningWorker) -> None:
    body = b'{"str": "' + b"a" * (LIMIT - len(b'{"str": ""}')) + b'"}'
    assert len(body) == LIMIT
    response = shared_worker.http.post("/", content=body, headers=JSON)
    assert response.status_code == 200, response.text


def test_json_media_types_with_parameters_and_suffixes_are_accepted(
    shared_worker: RunningWorker,
) -> None:
    for content_type in (
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/vnd.hashr+json",
    ):
        response = shared_worker.http.post(
            "/", content=b'{"str": "abc"}', headers={"content-type": content_type}
        )
        assert response.status_code == 200, (content_type, response.text)
