"""The hash, as the 2018 worker made it: text + hex(salt) + hour, SHA-256, base64, 44 chars."""

from __future__ import annotations

import base64
import hashlib

from hypothesis import given
from hypothesis import strategies as st

from istio_burst.worker.hashing import hash_string, make_salt


def test_known_answer() -> None:
    # "abcdefghij" + hex of the bytes 0..9 + hour 7, written out in full:
    spelled_out = b"abcdefghij" + b"00010203040506070809" + b"7"
    expected = base64.b64encode(hashlib.sha256(spelled_out).digest()).decode()
    assert expected == "nciz62g2WqRHBw4KIZjYWzak+mdKOQ3jC4i9Gvv+fVw="
    assert hash_string("abcdefghij", salt=bytes(range(10)), hour=7) == expected


def test_the_hour_is_not_zero_padded() -> None:
    expected = base64.b64encode(hashlib.sha256(b"abc" + b"ff" * 3 + b"9").digest()).decode()
    assert hash_string("abc", salt=b"\xff" * 3, hour=9) == expected


@given(text=st.text(max_size=200), salt=st.binary(max_size=64), hour=st.integers(0, 23))
def test_44_char_base64_of_32_bytes_and_deterministic(text: str, salt: bytes, hour: int) -> None:
    value = hash_string(text, salt=salt, hour=hour)
    assert len(value) == 44
    assert len(base64.b64decode(value, validate=True)) == 32
    assert hash_string(text, salt=salt, hour=hour) == value


def test_salt_and_hour_change_the_hash() -> None:
    base = hash_string("abc", salt=b"123", hour=5)
    assert hash_string("abc", salt=b"124", hour=5) != base
    assert hash_string("abc", salt=b"123", hour=6) != base
    assert hash_string("abd", salt=b"123", hour=5) != base


def test_salt_is_as_long_as_the_text_and_random() -> None:
    assert len(make_salt("abcdefghij")) == 10
    assert len(make_salt("héllo wörld")) == 11  # code points, not UTF-8 bytes
    assert make_salt("") == b""
    assert len({make_salt("abcdefgh") for _ in range(20)}) == 20


def test_unsalted_calls_differ_but_keep_the_shape() -> None:
    values = {hash_string("same text") for _ in range(10)}
    assert len(values) == 10
    assert all(len(v) == 44 for v in values)
