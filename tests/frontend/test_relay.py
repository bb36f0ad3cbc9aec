"""A page that cannot keep up gets the newest hashes and the true counts, never a growing queue.

The relay is driven directly here: a page counts as behind while its socket has packets queued,
which a real slow browser takes minutes of traffic to show.
"""

from __future__ import annotations

from typing import Any

from istio_burst.core.contracts import HashMessage
from istio_burst.frontend.relay import BEHIND_AFTER_PACKETS, HashRelay


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
    relay = HashRelay(server, window=0.01, per_batch=50, queued_packets=lambda _: 0)
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
    behind = {"slow": True}
    relay = HashRelay(
        server,
        window=0.01,
        per_batch=10,
        queued_packets=lambda sid: BEHIND_AFTER_PACKETS if behind.get(sid) else 0,
    )
    relay.add_page("fast")
    relay.add_page("slow")
    for window in range(5):
        for n in range(window * 8, window * 8 + 8):
            relay.add(message(n))
        await relay.flush()
    # The fast page got every window; the slow one nothing while it was behind.
    assert all(to == ["fast"] for _, _, to in server.sent)
    assert sum(data["count"] for _, data, _ in server.sent) == 40

    behind["slow"] = False
    server.sent.clear()
    await relay.flush()  # nothing new arrived: the slow page's backlog goes out on its own
    assert len(server.sent) == 1
    _, data, to = server.sent[0]
    assert to == ["slow"]
    assert data["count"] == 40, "the count covers every hash the page missed"
    assert [h["value"] for h in data["hashes"]] == [f"hash-{n}" for n in range(30, 40)]
