"""Encryption at rest of object data: AES-256-GCM over fixed-size chunks.

An object is one or more *segments* (one per PutObject, CopyObject or multipart part), each in
its own file. A segment is encrypted under its own key, derived from the object's data key and
a random per-segment salt::

    segment key = HKDF-SHA256(data key, salt, info="mock-kms s3 segment v1")
    chunk i     = AES-256-GCM(segment key, nonce = 0^4 || be64(i),
                              aad = "mock-kms s3 chunk v1" || be64(i) || final flag)

Chunks hold :data:`CHUNK_SIZE` plaintext bytes (the last one fewer) and are stored back to
back, each followed by its 16-byte tag, so chunk ``i`` of a segment starts at
``i * (CHUNK_SIZE + 16)``. That makes ranged reads and streaming cheap: memory stays at one
chunk per request whatever the object size. The per-segment key makes counter nonces safe even
when a multipart part is uploaded twice under the same data key, and the final flag in the
associated data makes a segment that lost its last chunks fail to decrypt instead of reading
as shorter.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

CHUNK_SIZE = 64 * 1024
TAG_SIZE = 16
SALT_SIZE = 16
DATA_KEY_SIZE = 32
_INFO = b"mock-kms s3 segment v1"
_AAD_PREFIX = b"mock-kms s3 chunk v1"


class SegmentCorruptError(Exception):
    """A stored segment failed authentication (wrong key, tampering, truncation)."""


def segment_cipher(data_key: bytes, salt: bytes) -> AESGCM:
    """The AES-GCM cipher for one segment. ``data_key`` must be 32 bytes."""
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError("data key must be 32 bytes")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=_INFO).derive(data_key)
    return AESGCM(derived)


def _nonce(index: int) -> bytes:
    return b"\0\0\0\0" + struct.pack(">Q", index)


def _aad(index: int, final: bool) -> bytes:
    return _AAD_PREFIX + struct.pack(">QB", index, 1 if final else 0)


def ciphertext_size(plaintext_size: int) -> int:
    """Bytes a segment of ``plaintext_size`` bytes occupies on disk."""
    chunks = -(-plaintext_size // CHUNK_SIZE)
    return plaintext_size + chunks * TAG_SIZE


class SegmentEncryptor:
    """Encrypts one segment's plaintext as it streams in.

    Feed bytes with :meth:`update` and call :meth:`finalize` once; both return the ciphertext
    chunks that are ready. One chunk is held back until more data arrives, because only the
    last chunk carries the final flag and the end is only known at :meth:`finalize`.
    """

    def __init__(self, data_key: bytes, salt: bytes) -> None:
        self._cipher = segment_cipher(data_key, salt)
        self._pending = bytearray()
        self._index = 0
        self._finished = False
        self.plaintext_size = 0

    def update(self, data: bytes) -> list[bytes]:
        """Encrypt what can be encrypted now; returns zero or more ciphertext chunks."""
        if self._finished:
            raise ValueError("segment already finalized")
        self._pending += data
        self.plaintext_size += len(data)
        out: list[bytes] = []
        # Strictly greater: the chunk that exactly fills the buffer may turn out to be the last.
        while len(self._pending) > CHUNK_SIZE:
            out.append(self._seal(bytes(self._pending[:CHUNK_SIZE]), final=False))
            del self._pending[:CHUNK_SIZE]
        return out

    def finalize(self) -> list[bytes]:
        """The last chunk (none for an empty segment)."""
        if self._finished:
            raise ValueError("segment already finalized")
        self._finished = True
        if not self._pending:
            return []
        last = self._seal(bytes(self._pending), final=True)
        self._pending.clear()
        return [last]

    def _seal(self, plaintext: bytes, *, final: bool) -> bytes:
        sealed = self._cipher.encrypt(_nonce(self._index), plaintext, _aad(self._index, final))
        self._index += 1
        return sealed


def decrypt_range(
    source: BinaryIO,
    data_key: bytes,
    salt: bytes,
    size: int,
    start: int,
    end: int,
) -> Iterator[bytes]:
    """Plaintext bytes ``start..end`` (inclusive) of a segment of ``size`` plaintext bytes,
    read from ``source`` one chunk at a time.

    Raises :class:`SegmentCorruptError` when a chunk fails authentication or is short, and
    ValueError for a range outside the segment.
    """
    if not 0 <= start <= end < size:
        raise ValueError(f"range {start}-{end} outside a segment of {size} bytes")
    cipher = segment_cipher(data_key, salt)
    last_index = (size - 1) // CHUNK_SIZE
    first = start // CHUNK_SIZE
    source.seek(first * (CHUNK_SIZE + TAG_SIZE))
    for index in range(first, end // CHUNK_SIZE + 1):
        final = index == last_index
        length = (size - index * CHUNK_SIZE if final else CHUNK_SIZE) + TAG_SIZE
        sealed = source.read(length)
        if len(sealed) != length:
            raise SegmentCorruptError(f"segment truncated at chunk {index}")
        try:
            plaintext = cipher.decrypt(_nonce(index), sealed, _aad(index, final))
        except InvalidTag:
            raise SegmentCorruptError(f"chunk {index} failed authentication") from None
        chunk_start = index * CHUNK_SIZE
        low = max(start - chunk_start, 0)
        high = min(end - chunk_start + 1, len(plaintext))
        yield plaintext if low == 0 and high == len(plaintext) else plaintext[low:high]
