"""Socket.io pages as plain websockets (Engine.IO 4, Socket.IO 5 text packets, by hand).

Light enough to hold hundreds open from one test, and able to send what the real client never
does (binary events, oversized frames). Packets: `0{…}` open, `2`/`3` ping/pong, `40` connect,
`42["event", data]` an event.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
import orjson


def socket_url(base_url: str, transport: str = "websocket") -> str:
    scheme = "ws" if transport == "websocket" else "http"
    return f"{scheme}{base_url.removeprefix('http')}/socket.io/?EIO=4&transport={transport}"


class RawPage:
    """One connected page; `events` collects what the server sends, `latest` the last of each."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.latest: dict[str, Any] = {}
        self.changed = asyncio.Event()
        self.ended = asyncio.Event()  # the server closed the connection
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, base_url: str, headers: dict[str, str] | None = None
    ) -> RawPage:
        ws = await session.ws_connect(socket_url(base_url), headers=headers, max_msg_size=0)
        opened = await ws.receive_str(timeout=10)
        assert opened.startswith("0{"), opened
        await ws.send_str("40")
        page = cls(ws)
        page._reader = asyncio.create_task(page._read())
        return page

    async def emit(self, event: str, data: Any) -> None:
        await self.ws.send_str("42" + orjson.dumps([event, data]).decode())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type != aiohttp.WSMsgType.TEXT:
                    break
                text: str = message.data
                if text == "2":
                    await self.ws.send_str("3")
                elif text.startswith("42"):
                    name, *args = orjson.loads(text[2:])
                    self.latest[name] = args[0] if args else None
                    self.changed.set()
        finally:
            self.ended.set()

    async def close(self) -> None:
        await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    @property
    def closed(self) -> bool:
        return self.ws.closed
