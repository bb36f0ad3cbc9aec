"""The hash, as the 2018 worker computed it."""

from __future__ import annotations

import base64
import hashlib
import os
import time


def make_salt(text: str) -> bytes:
    """As many random bytes as the text is long.

    The original counted JavaScript string length (UTF-16 units); we count code points: the salt
    only has to be unpredictable, and for ASCII text the two agree.
    """
    return os.urandom(len(text))


def hash_string(text: str, *, salt: bytes | None = None, hour: int | None = None) -> str:
    """SHA-256 of text + hex(salt) + the local hour (0-23, no padding), base64.

    44 characters, like `P9pqXhkdRsVEasms9+T2CBClO5hHH95soLGzHfWk3s0=`.
    """
    if salt is None:
        salt = make_salt(text)
    if hour is None:
        hour = time.localtime().tm_hour
    digest = hashlib.sha256(
        text.encode("utf-8", "surrogatepass") + salt.hex().encode() + str(hour).encode()
    ).digest()
    return base64.b64encode(digest).decode()
