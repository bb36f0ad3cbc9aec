"""The hash, as the 2018 worker computed it."""

from __future__ import annotations

import base64
import hashlib
import os
import time


def hash_string(text: str, *, salt: bytes | None = None, hour: int | None = None) -> str:
    """SHA-256 of text + hex(random bytes, as many as the text is long) + the local hour, base64.

    The original salted with `len(text)` random bytes (JavaScript counts UTF-16 units; we count
    code points: the salt only has to be unpredictable). 44 characters, like
    `P9pqXhkdRsVEasms9+T2CBClO5hHH95soLGzHfWk3s0=`.
    """
    if salt is None:
        salt = os.urandom(len(text))
    if hour is None:
        hour = time.localtime().tm_hour
    digest = hashlib.sha256(
        text.encode("utf-8", "surrogatepass") + salt.hex().encode() + str(hour).encode()
    ).digest()
    return base64.b64encode(digest).decode()
