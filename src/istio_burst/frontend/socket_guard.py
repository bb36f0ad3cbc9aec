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

The size of one websocket frame is bounded where the server reads it (uvicorn's `ws_max_size`):
no ASGI app sees a frame before it is whole.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from istio_burst.core.http_errors import error_response
from istio_burst.frontend import metrics

SOCKET_PATH = "/socket.io/"
# Engine.IO's base64 binary packet ("b…"), and socket.io's BINARY_EVENT / BINARY_ACK sent in an
# Engine.IO MESSAGE ("45…", "46…"). Polling payloads join packets with the record separator.
_BINARY_PREFIXES = (b"b", b"45", b"46")
_BINARY_TEXT_PREFIXES = ("45", "46")
_SEPARATOR = b"\x1e"
# Websocket close codes (RFC 6455): unsupported data, policy violation.
_UNSUPPORTED_DATA = 1003


def socket_guard(app: ASGIApp, max_bytes: int) -> ASGIApp:
    async def guarded(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or not scope["path"].startswith(SOCKET_PATH):
            await app(scope, receive, send)
        elif scope["type"] == "websocket":
            await app(scope, _text_frames_only(receive, send), send)
        elif scope["method"] == "POST":
            await _post(app, max_bytes, scope, receive, send)
        else:
            await app(scope, receive, send)

    return guarded


async def _post(app: ASGIApp, max_bytes: int, scope: Scope, receive: Receive, send: Send) -> None:
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
    if any(packet.startswith(_BINARY_PREFIXES) for packet in body.split(_SEPARATOR)):
        detail = "binary socket.io packets are not accepted"
        await _refusal("binary", 400, detail)(scope, receive, send)
        return
    try:
        await app(scope, _replay(body, receive), send)
    except KeyError:  # raised by Engine.IO before it answers anything
        await error_response(400, "the socket.io session is closed")(scope, receive, send)


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


def _text_frames_only(receive: Receive, send: Send) -> Receive:
    async def checked() -> Message:
        message = await receive()
        if message["type"] == "websocket.receive":
            text = message.get("text")
            if text is None or text.startswith(_BINARY_TEXT_PREFIXES):
                metrics.REFUSED.labels(reason="binary").inc()
                await send({"type": "websocket.close", "code": _UNSUPPORTED_DATA})
                # Engine.IO ends the socket on anything but a frame.
                return {"type": "websocket.disconnect", "code": _UNSUPPORTED_DATA}
        return message

    return checked
