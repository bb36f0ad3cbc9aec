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
import httpx
import orjson


def socket_url(base_url: str, transport: str = "websocket") -> str:
    scheme = "ws" if transport == "websocket" else "http"
    return f"{scheme}{base_url.removeprefix('http')}/socket.io/?EIO=4&transport={transport}"


async def polling_session(http: httpx.AsyncClient, base_url: str) -> str:
    """Open a long-polling Engine.IO session; the URL its POSTs and GETs go to (with its sid)."""
    polling = socket_url(base_url, "polling")
    opened = await http.get(polling)
    assert opened.text.startswith("0{"), opened.text
    return f"{polling}&sid={orjson.loads(opened.text[1:])['sid']}"


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


class WireSocket:
    """A socket.io page on a bare TCP stream, framing websocket messages by hand.

    What aiohttp cannot do cheaply: many events in one TCP write (a burst as it reaches the
    server), and a stream of events from hundreds of pages that costs the test next to nothing,
    so the frontend, not the test, is what runs out of CPU. Frames are sent with a zero mask
    (valid, and the payload stays as written).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.texts: list[str] = []  # every text message the server sent, in order
        self.arrived = asyncio.Event()
        self.ended = asyncio.Event()  # the server closed the connection
        self._reader: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, base_url: str, *, keep: bool = False) -> WireSocket:
        """Connected to the default namespace; `keep` records what the server sends (else it
        is read and dropped)."""
        host, _, port = base_url.removeprefix("http://").partition(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(
            b"GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: %s:%s\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (host.encode(), port.encode())
        )
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        if not head.startswith(b"HTTP/1.1 101"):
            writer.close()
            raise ConnectionRefusedError(head.split(b"\r\n", 1)[0].decode("latin-1"))
        socket = cls(reader, writer)
        opened = await asyncio.wait_for(socket._next_text(), 10)
        assert opened.startswith("0{"), opened
        writer.write(frame("40"))
        socket._reader = asyncio.create_task(socket._read(keep))
        return socket

    async def _next_text(self) -> str:
        first, second = await self.reader.readexactly(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(await self.reader.readexactly(2))
        elif length == 127:
            length = int.from_bytes(await self.reader.readexactly(8))
        payload = await self.reader.readexactly(length)
        if first & 0x0F == 0x8:
            raise EOFError("closed by the server")
        return payload.decode() if first & 0x0F == 0x1 else ""

    async def _read(self, keep: bool) -> None:
        try:
            while True:
                text = await self._next_text()
                if text == "2":
                    self.writer.write(frame("3"))
                elif keep and text.startswith("42"):
                    self.texts.append(text)
                    self.arrived.set()
        except (EOFError, asyncio.IncompleteReadError, ConnectionError):
            self.ended.set()

    def events(self, name: str) -> list[Any]:
        """The data of every `name` event received so far."""
        found = []
        for text in self.texts:
            event, *args = orjson.loads(text[2:])
            if event == name:
                found.append(args[0] if args else None)
        return found

    def send(self, *events: tuple[str, Any]) -> None:
        """Every event in one write."""
        self.writer.write(
            b"".join(frame("42" + orjson.dumps(list(event)).decode()) for event in events)
        )

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


def frame(text: str) -> bytes:
    """A client's websocket text frame (FIN, masked with a zero key)."""
    payload = text.encode()
    if len(payload) < 126:
        head = bytes([0x81, 0x80 | len(payload)])
    else:
        head = bytes([0x81, 0x80 | 126]) + len(payload).to_bytes(2)
    return head + b"\0\0\0\0" + payload
