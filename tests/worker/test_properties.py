"""Property-based: whatever is POSTed, the answer is a 200 whose message was published exactly as
answered, or a 4xx JSON error and nothing published. Never a 5xx."""

from __future__ import annotations

import json
import string
from typing import Any

import orjson
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.worker.conftest import RunningWorker, Subscriber

CLIENT_ERRORS = {400, 413, 415, 422}
PUBLISHES = "hashr_worker_publish_seconds_count"
HASH_LENGTH = 44

PROPERTY_SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=12,
)
# Objects with a "str" key, so a good share of examples are valid requests.
hash_requests = st.builds(
    lambda extra, text: {**extra, "str": text},
    st.dictionaries(st.text(max_size=6), json_values, max_size=3),
    st.text(max_size=40) | json_values,
)


def post_and_check(
    worker: RunningWorker, subscriber: Subscriber, **request: Any
) -> tuple[int, dict[str, Any]]:
    """POST, then check the invariant every answer must keep; returns (status, answer)."""
    publishes_before = worker.metric(PUBLISHES)
    response = worker.http.post("/", **request)
    status, answer = response.status_code, orjson.loads(response.content)
    assert status == 200 or status in CLIENT_ERRORS, (status, answer)
    event(f"status {status}")  # --hypothesis-show-statistics: how many of each
    if status == 200:
        assert subscriber.next() == response.content, "the message differs from the answer"
        assert len(answer["value"]) == HASH_LENGTH
        assert worker.metric(PUBLISHES) == publishes_before + 1
    else:
        assert set(answer) == {"error", "detail"} and answer["detail"], answer
        assert worker.metric(PUBLISHES) == publishes_before, "a rejected request was published"
    assert worker.proc.alive()
    return status, answer


@PROPERTY_SETTINGS
@given(value=json_values | hash_requests)
def test_any_json_value(value: Any, shared_worker: RunningWorker, subscriber: Subscriber) -> None:
    status, _ = post_and_check(shared_worker, subscriber, content=json.dumps(value).encode())
    valid = isinstance(value, dict) and isinstance(value.get("str"), str)
    assert status == (200 if valid else 422)


@PROPERTY_SETTINGS
@given(body=st.binary(max_size=200) | hash_requests.map(lambda v: json.dumps(v).encode()))
def test_any_bytes(body: bytes, shared_worker: RunningWorker, subscriber: Subscriber) -> None:
    status, _ = post_and_check(
        shared_worker, subscriber, content=body, headers={"content-type": "application/json"}
    )
    if status == 200:
        assert isinstance(json.loads(body)["str"], str)


media_types = st.sampled_from(
    [
        "",
        "application/json",
        "Application/JSON;charset=UTF-8",
        "application/json; charset=utf-8",
        "application/problem+json",
        "text/json",
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/jsonp",
        "json",
    ]
) | st.text(alphabet=string.ascii_letters + string.digits + "/+;=-. ", max_size=40).map(str.strip)


@PROPERTY_SETTINGS
@given(content_type=media_types)
def test_any_content_type(
    content_type: str, shared_worker: RunningWorker, subscriber: Subscriber
) -> None:
    headers = {"content-type": content_type} if content_type else {}
    status, answer = post_and_check(
        shared_worker, subscriber, content=b'{"str": "abc"}', headers=headers
    )
    media_type = content_type.split(";", 1)[0].strip().lower()
    is_json = media_type in ("", "application/json") or media_type.endswith("+json")
    assert status == (200 if is_json else 415), (content_type, answer)
