"""One HTTP GET with a deadline for the whole exchange and a cap on the body.

httpx's timeouts bound each network operation, not the request: a server that trickles one
byte a second never trips them. Here `deadline` bounds everything from connecting to the last
byte of the body, and a body larger than `max_bytes` is refused without being kept. The body
is asked for uncompressed and read as sent (never inflated: no compression bomb), and redirects
are never followed (the caller sees the 3xx and decides).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import httpx

MAX_BODY_BYTES = 1024 * 1024  # a Prometheus instant query for one number is ~100 bytes
IDENTITY = {"Accept-Encoding": "identity"}


class BodyTooLargeError(Exception):
    def __init__(self, limit: int) -> None:
        super().__init__(f"response body over {limit} bytes")


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes
    location: str = ""  # the Location header of a redirect


async def bounded_get(
    client: httpx.AsyncClient,
    url: str,
    *,
    deadline: float,
    params: dict[str, Any] | None = None,
    max_bytes: int = MAX_BODY_BYTES,
    read_body: bool = True,
) -> Response:
    """GET `url`; raises TimeoutError past `deadline` s, BodyTooLargeError, or httpx's errors."""
    async with asyncio.timeout(deadline):
        async with client.stream(
            "GET", url, params=params, headers=IDENTITY, follow_redirects=False
        ) as response:
            location = response.headers.get("location", "")
            if not read_body or response.is_redirect:
                return Response(response.status_code, b"", location)
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > max_bytes:
                raise BodyTooLargeError(max_bytes)
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > max_bytes:
                    raise BodyTooLargeError(max_bytes)
            return Response(response.status_code, bytes(body), location)
