"""Chunked AES-GCM of object segments: round trips, ranges, and tampering detected."""

from __future__ import annotations

import io
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from s3_service.chunks import (
    CHUNK_SIZE,
    TAG_SIZE,
    SegmentCorruptError,
    SegmentEncryptor,
    ciphertext_size,
    decrypt_range,
)

KEY = bytes(range(32))
SALT = b"s" * 16


def seal(data: bytes, pieces: int = 3, key: bytes = KEY, salt: bytes = SALT) -> bytes:
    encryptor = SegmentEncryptor(key, salt)
    out = bytearray()
    step = max(1, len(data) // pieces)
    for offset in range(0, len(data), step):
        for chunk in encryptor.update(data[offset : offset + step]):
            out += chunk
    for chunk in encryptor.finalize():
        out += chunk
    return bytes(out)


def read(sealed: bytes, size: int, start: int, end: int, key: bytes = KEY) -> bytes:
    return b"".join(decrypt_range(io.BytesIO(sealed), key, SALT, size, start, end))


@pytest.mark.parametrize(
    "size", [1, 100, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 3 * CHUNK_SIZE + 17]
)
def test_round_trip_and_size(size: int) -> None:
    # A fixed plaintext under the fixed key and salt: the containment check below is then
    # decided once, not re-drawn (a random 1-byte plaintext sits in its own 17-byte sealed
    # form by chance about 6% of the time).
    data = bytes((7 * index + 1) % 256 for index in range(size))
    sealed = seal(data)
    assert len(sealed) == ciphertext_size(size)
    assert read(sealed, size, 0, size - 1) == data
    assert data not in sealed


def test_empty_segment_has_no_chunks() -> None:
    assert seal(b"") == b""
    assert ciphertext_size(0) == 0


@settings(max_examples=60, deadline=None)
@given(
    size=st.integers(min_value=1, max_value=3 * CHUNK_SIZE + 5),
    data=st.data(),
)
def test_any_range_matches_the_plaintext(size: int, data: st.DataObject) -> None:
    plaintext = bytes(i % 251 for i in range(size))
    sealed = seal(plaintext, pieces=data.draw(st.integers(1, 7)))
    start = data.draw(st.integers(0, size - 1))
    end = data.draw(st.integers(start, size - 1))
    assert read(sealed, size, start, end) == plaintext[start : end + 1]


def test_wrong_key_fails_authentication() -> None:
    sealed = seal(b"x" * 1000)
    with pytest.raises(SegmentCorruptError):
        read(sealed, 1000, 0, 999, key=bytes(32))


def test_flipped_bit_fails() -> None:
    sealed = bytearray(seal(b"y" * (CHUNK_SIZE + 10)))
    sealed[CHUNK_SIZE + TAG_SIZE + 3] ^= 1
    # The first chunk is intact and still readable; the damaged second one is not.
    assert read(bytes(sealed), CHUNK_SIZE + 10, 0, 99) == b"y" * 100
    with pytest.raises(SegmentCorruptError):
        read(bytes(sealed), CHUNK_SIZE + 10, 0, CHUNK_SIZE + 9)


def test_truncation_at_a_chunk_boundary_is_detected() -> None:
    size = 2 * CHUNK_SIZE
    sealed = seal(os.urandom(size))
    first_chunk_only = sealed[: CHUNK_SIZE + TAG_SIZE]
    # Claiming the segment is one chunk long: that chunk was not sealed as the final one.
    with pytest.raises(SegmentCorruptError):
        read(first_chunk_only, CHUNK_SIZE, 0, CHUNK_SIZE - 1)
    with pytest.raises(SegmentCorruptError):
        read(first_chunk_only, size, 0, size - 1)


def test_same_key_different_salt_gives_unrelated_ciphertext() -> None:
    data = b"z" * 5000
    assert seal(data, salt=b"a" * 16) != seal(data, salt=b"b" * 16)


def test_range_outside_the_segment_is_refused() -> None:
    with pytest.raises(ValueError):
        read(seal(b"abc"), 3, 2, 3)


def test_encryptor_cannot_be_reused_after_finalize() -> None:
    encryptor = SegmentEncryptor(KEY, SALT)
    encryptor.finalize()
    with pytest.raises(ValueError):
        encryptor.update(b"more")
