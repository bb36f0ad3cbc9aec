"""What may reach Engine.IO at all: a guard in front of `/socket.io/`.

- A long-polling POST over `max_bytes` is answered 413 at once, by its Content-Length or by the
  bytes read, and the connection closed: Engine.IO's own check leaves such a request unanswered
  and its buffers behind.
- Binary packets are refused: the page never sends any, and a socket.io event declaring
  attachments makes the server collect frames until the declared number has arrived. On a
  websocket a binary frame, or a text frame carrying a binary event, closes the connection.
- A POST for a session its page has just closed gets the 400 Engine.IO gives such a GET;
  Engine.IO itself raises there (KeyError), a 500 and a traceback for every page that leaves
  while a POST of its is on the way.

- Each page's `frequency` events are spent from its budget as they arrive (event_budget.py):
  a websocket is read by a task of its own as fast as frames come, into a small inbox that
  Engine.IO reads at its own pace; a polling POST is filtered packet by packet.

The size of one websocket frame is bounded where the server reads it (uvicorn's `ws_max_size`):
no ASGI app sees a frame before it is whole.
"""

from __future__ import annotations

import asyncio
from collections import deque
from urllib.parse import parse_qs

from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from istio_burst.core.background import BackgroundTasks
from istio_burst.core.http_errors import error_response
from istio_burst.frontend import metrics
from istio_burst.frontend.page.event_budget import OVER_BUDGET_PACKET, PageBudget, PollingBudgets

SOCKET_PATH = "/socket.io/"
# Engine.IO's base64 binary packet ("b…"), and socket.io's BINARY_EVENT / BINARY_ACK sent in an
# Engine.IO MESSAGE ("45…", "46…"). Polling payloads join packets with the record separator.
_BINARY_PREFIXES = (b"b", b"45", b"46")
_BINARY_TEXT_PREFIXES = ("45", "46")
_SEPARATOR = b"\x1e"
# Websocket close codes (RFC 6455): unsupported data, policy violation.
_UNSUPPORTED_DATA = 1003
# Frames read ahead of Engine.IO, per websocket: beyond this many bytes the reader waits.
INBOX_BYTES = 64 * 1024


def socket_guard(app: ASGIApp, max_bytes: int, events_per_second: float) -> ASGIApp:
    polling = PollingBudgets(events_per_second)

    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(SOCKET_PATH):
            await app(scope, receive, send)
        elif scope["type"] == "websocket":
            await _websocket(app, PageBudget(events_per_second), scope, receive, send)
        elif scope["method"] == "POST":
            await _post(app, scope, receive, send, max_bytes=max_bytes, budgets=polling)
        else:
            await app(scope, receive, send)

    return guarded


async def _websocket(
    app: ASGIApp, budget: PageBudget, scope: Scope, receive: Receive, send: Send
) -> None:
    inbox = _Inbox(INBOX_BYTES)

    async def read_ahead() -> None:
        while True:
            message = await receive()
            if message["type"] == "websocket.receive":
                text = message.get("text")
                if text is None or text.startswith(_BINARY_TEXT_PREFIXES):
                    metrics.REFUSED.labels(reason="binary").inc()
                    await send({"type": "websocket.close", "code": _UNSUPPORTED_DATA})
                    # Engine.IO ends the socket on anything but a frame.
                    await inbox.put({"type": "websocket.disconnect", "code": _UNSUPPORTED_DATA})
                    return
                passed = budget.admit(text)
                if passed is None:
                    continue
                if passed is OVER_BUDGET_PACKET:
                    inbox.put_first({"type": "websocket.receive", "text": passed})
                    continue
            await inbox.put(message)
            if message["type"] == "websocket.disconnect":
                return

    reader = BackgroundTasks()
    reader.start(read_ahead(), "socket-read-ahead")
    try:
        await app(scope, inbox.get, send)
    finally:
        await reader.stop()


class _Inbox:
    """Messages read from a websocket, waiting for Engine.IO; at most about `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self._messages: deque[Message] = deque()
        self._bytes = 0
        self._max_bytes = max_bytes
        self._arrived = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    async def put(self, message: Message) -> None:
        await self._room.wait()
        self._messages.append(message)
        self._added(message)

    def put_first(self, message: Message) -> None:
        """Ahead of the others (a refusal the page should hear of before more is handled)."""
        self._messages.appendleft(message)
        self._added(message)

    def _added(self, message: Message) -> None:
        self._bytes += len(message.get("text") or "")
        self._arrived.set()
        if self._bytes >= self._max_bytes:
            self._room.clear()

    async def get(self) -> Message:
        while not self._messages:
            self._arrived.clear()
            await self._arrived.wait()
        message = self._messages.popleft()
        self._bytes -= len(message.get("text") or "")
        if self._bytes < self._max_bytes:
            self._room.set()
        return message


async def _post(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    *,
    max_bytes: int,
    budgets: PollingBudgets,
) -> None:
    too_large = f"a socket.io message is at most {max_bytes} bytes"
    if _content_length(scope) > max_bytes:
        await _refusal("too_large", 413, too_large)(scope, receive, send)
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if len(body) > max_bytes:
            await _refusal("too_large", 413, too_large)(scope, receive, send)
            return
        if not message.get("more_body", False):
            break
    packets = body.split(_SEPARATOR)
    if any(packet.startswith(_BINARY_PREFIXES) for packet in packets):
        detail = "binary socket.io packets are not accepted"
        await _refusal("binary", 400, detail)(scope, receive, send)
        return
    sid = _session_id(scope)
    if sid is not None:
        budget = budgets.of(sid)
        passed = []
        for packet in packets:
            admitted = budget.admit(packet.decode(errors="replace"))
            if admitted is OVER_BUDGET_PACKET:
                passed.append(admitted.encode())
            elif admitted is not None:
                passed.append(packet)
        if not passed:
            await PlainTextResponse("OK")(scope, receive, send)  # as Engine.IO answers a POST
            return
        body = _SEPARATOR.join(passed)
    try:
        await app(scope, _replay(body, receive), send)
    except KeyError:  # raised by Engine.IO before it answers anything
        await error_response(400, "the socket.io session is closed")(scope, receive, send)


def _session_id(scope: Scope) -> str | None:
    sids = parse_qs(scope.get("query_string", b"").decode("latin-1")).get("sid")
    return sids[0] if sids else None


def _content_length(scope: Scope) -> int:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return 0  # h11/httptools refuse a malformed one before we get here
    return 0


def _refusal(reason: str, status: int, detail: str) -> ASGIApp:
    metrics.REFUSED.labels(reason=reason).inc()
    response = error_response(status, detail)
    # The rest of the body is never read: end the connection with the answer.
    response.headers["connection"] = "close"
    return response


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
