"""Every bad `frequency` event is refused with a reason; the running rate stays as it was.

The 2018 frontend crashed on an empty payload and turned every bad value into a 1 ms timer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from harness.frontend import Page, Stack
from istio_burst.frontend.page.frequency_input import FrequencyError, parse_frequency

RUNNING = 10.0

# (the event's data as python-socketio sends it: a tuple is one argument per item, why it is bad)
BAD_PAYLOADS: list[tuple[Any, str]] = [
    ((), "no payload"),
    ((None,), "a bare null"),
    ({"freq": -1}, "negative"),
    ({"freq": float("nan")}, "NaN"),
    ({"freq": "NaN"}, "NaN as text"),
    ({"freq": float("inf")}, "infinite"),
    ({"freq": None}, "null"),
    ({"freq": "fast"}, "text that is not a number"),
    ({"freq": ""}, "empty text"),
    ({"freq": "0x10"}, "hex text"),
    ({"freq": 101}, "over the maximum"),
    ({"freq": 1e9}, "far over the maximum"),
    ({"freq": True}, "a boolean"),
    ({"freq": [5]}, "a list as the value"),
    ({}, "no freq field"),
    ([5], "a list"),
    (5, "a bare number"),
    ("5", "a bare string"),
    ((5, 6), "two arguments"),
]


@pytest.fixture(scope="module")
def running(stack: Stack) -> Iterator[Stack]:
    """The module's frontend driving the worker at RUNNING requests/s."""

    async def set_to(freq: float) -> None:
        async with Page(stack.url) as page:
            await page.set_frequency(freq)

    asyncio.run(set_to(RUNNING))
    yield stack
    asyncio.run(set_to(0))


@pytest.mark.parametrize(
    "data", [data for data, _ in BAD_PAYLOADS], ids=[why for _, why in BAD_PAYLOADS]
)
async def test_a_bad_frequency_is_refused_and_changes_nothing(running: Stack, data: Any) -> None:
    async with Page(running.url) as page:
        since = page.mark()
        await page.emit("frequency", data)
        refusal = await page.wait_for("frequency_error", since=since)
        assert refusal["error"] == "bad_frequency"
        assert refusal["detail"]
        assert refusal["freq"] == RUNNING
    async with Page(running.url) as fresh:
        assert (await fresh.wait_for("frequency"))["freq"] == RUNNING
    assert running.frontend.alive()


async def test_after_every_bad_payload_the_rate_is_unchanged(running: Stack) -> None:
    # A page may send FREQUENCY_EVENTS_PER_SECOND (10) at once: the payloads go in fives.
    for start in range(0, len(BAD_PAYLOADS), 5):
        async with Page(running.url) as sender:
            chunk = BAD_PAYLOADS[start : start + 5]
            since = sender.mark()
            for data, _ in chunk:
                await sender.emit("frequency", data)
            count = {"seen": 0, "want": len(chunk)}

            def last_of_chunk(_: Any, count: dict[str, int] = count) -> bool:
                count["seen"] += 1
                return count["seen"] == count["want"]

            await sender.wait_for("frequency_error", last_of_chunk, since=since)
            errors = {e.data["error"] for e in sender.events if e.name == "frequency_error"}
            assert errors == {"bad_frequency"}
    async with Page(running.url) as page:
        await page.wait_for("hashes")
        rate = await page.hash_rate(2.0)
        assert not [e for e in page.events if e.name == "frequency" and e.data["freq"] != RUNNING]
    assert 6 <= rate <= 14, f"running at {RUNNING}/s, got {rate:.1f} hashes/s"
    assert running.frontend.alive()


async def test_a_numeric_string_is_accepted(running: Stack) -> None:
    async with Page(running.url) as page:
        await page.wait_for("frequency")  # the value on connect
        since = page.mark()
        await page.emit("frequency", {"freq": " 12.5 "})
        assert (await page.wait_for("frequency", since=since))["freq"] == 12.5
        await page.set_frequency(RUNNING)


@pytest.mark.parametrize("payload", [None, {"freq": "1_000"}, {"freq": "+inf"}, {"freq": {}}])
def test_parse_frequency_refuses(payload: Any) -> None:
    with pytest.raises(FrequencyError):
        parse_frequency(payload, 100)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [({"freq": 0}, 0.0), ({"freq": 100}, 100.0), ({"freq": "7"}, 7.0), ({"freq": ".5"}, 0.5)],
)
def test_parse_frequency_accepts(payload: Any, expected: float) -> None:
    assert parse_frequency(payload, 100) == expected
