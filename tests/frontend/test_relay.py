"""A page that cannot keep up gets the newest hashes and the true counts, never a growing queue.

The relay is driven directly here: a page counts as behind while the batch it says it has
handled (its `received` events) lags the newest by more than BEHIND_AFTER_BATCHES.
"""

from __future__ import annotations

from typing import Any

from harness.frontend import Page, Stack
from istio_burst.core.contracts import HashMessage
from istio_burst.frontend.page.hash_relay import BEHIND_AFTER_BATCHES, HashRelay


class Recorder:
    """Stands in for socketio.AsyncServer.emit: records who was sent what."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], list[str]]] = []

    async def emit(self, event: str, data: dict[str, Any], to: str | list[str]) -> None:
        self.sent.append((event, data, [to] if isinstance(to, str) else list(to)))


def message(n: int, cluster: str = "primary") -> HashMessage:
    prefix = "bursty-" if cluster == "burst" else ""
    return HashMessage(f"{prefix}hash-{n}", cluster, "w1", 1_700_000_000.0 + n)


async def test_pages_keeping_up_share_one_event_per_window() -> None:
    server = Recorder()
    relay = HashRelay(server, window=0.01, per_batch=50)
    relay.add_page("a")
    relay.add_page("b")
    for n in range(3):
        relay.add(message(n))
    relay.add(message(3, "burst"))
    await relay.flush()
    assert len(server.sent) == 1
    event, data, to = server.sent[0]
    assert event == "hashes" and sorted(to) == ["a", "b"]
    assert [h["value"] for h in data["hashes"]] == ["hash-0", "hash-1", "hash-2", "bursty-hash-3"]
    assert data["count"] == 4 and data["counts"] == {"primary": 3, "burst": 1}


async def test_a_page_that_is_behind_gets_the_newest_and_the_true_count() -> None:
    server = Recorder()
    relay = HashRelay(server, window=0.01, per_batch=10)
    relay.add_page("fast")
    relay.add_page("slow")
    windows = BEHIND_AFTER_BATCHES + 5
    for window in range(windows):
        for n in range(window * 8, window * 8 + 8):
            relay.add(message(n))
        await relay.flush()
        # The fast page says it has handled each batch; the slow one never does.
        await relay.received("fast", {"seq": server.sent[-1][1]["seq"]})
    # Both got every window until the slow one was too far behind; then only the fast one.
    to_slow = [data for _, data, to in server.sent if "slow" in to]
    assert len(to_slow) == BEHIND_AFTER_BATCHES
    assert all(to == ["fast"] for _, _, to in server.sent[BEHIND_AFTER_BATCHES:])
    missed = (windows - BEHIND_AFTER_BATCHES) * 8

    await relay.received("slow", {"seq": to_slow[-1]["seq"]})  # it has caught up
    server.sent.clear()
    await relay.flush()  # nothing new arrived: the slow page's backlog goes out on its own
    assert len(server.sent) == 1
    _, data, to = server.sent[0]
    assert to == ["slow"]
    assert data["count"] == missed, "the count covers every hash the page missed"
    assert [h["value"] for h in data["hashes"]] == [
        f"hash-{n}" for n in range(windows * 8 - 10, windows * 8)
    ]


async def test_acknowledgements_that_are_not_batch_numbers_are_ignored() -> None:
    relay = HashRelay(Recorder(), window=0.01, per_batch=10)
    relay.add_page("a")
    relay.add(message(1))
    await relay.flush()
    for bad in (None, 5, {"seq": "1"}, {"seq": True}, {"seq": 1.0}, {"seq": 2}, {"seq": -1}):
        await relay.received("a", bad)
    await relay.received("nobody", {"seq": 1})
    assert relay.lag("a") == 1
    await relay.received("a", {"seq": 1})
    assert relay.lag("a") == 0


async def test_a_page_that_never_says_what_it_handled_stops_getting_batches(stack: Stack) -> None:
    """The real frontend: a client that reads nothing back costs at most BEHIND_AFTER_BATCHES."""
    async with Page(stack.url) as reading, Page(stack.url, acknowledge=False) as silent:
        await reading.set_frequency(80)
        await silent.wait_for("hashes")
        # At 80/s the 30 ms windows hold a hash or three: ~30 batches a second.
        await reading.wait_for("hashes", lambda b: b["seq"] > BEHIND_AFTER_BATCHES + 20, timeout=30)
        batches = [e.data for e in silent.events if e.name == "hashes"]
        assert len(batches) <= BEHIND_AFTER_BATCHES + 1, "batches kept coming"
        since = reading.mark()
        await reading.wait_for("hashes", since=since)  # the reading page is still served

        # It says what it has handled: it gets one batch with the newest and the true count.
        caught_up = silent.mark()
        await silent.emit("received", {"seq": batches[-1]["seq"]})
        backlog = await silent.wait_for("hashes", since=caught_up)
        # At least the 20 batches it missed while the reading page went on (about one hash each).
        assert backlog["count"] >= 15, backlog["count"]
        await reading.set_frequency(0)
