"""Moving object bytes: encrypting a stream into a new segment file, and decrypting stored
segments back into a stream. Memory is bounded by a chunk or a read piece, never by the
object size."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, TypeVar

from s3_service.blobs import BlobStore
from s3_service.chunks import SALT_SIZE, SegmentEncryptor, decrypt_range
from s3_service.records import Segment

log = logging.getLogger("mock_kms.s3")
T = TypeVar("T")
#: Segment files opened before the response starts; the rest are opened as the stream
#: reaches them, so a GET of a 10,000-part object does not need 10,000 descriptors at once.
EAGER_OPEN_LIMIT = 64


@dataclass(frozen=True)
class WrittenSegment:
    """A committed segment and the digests S3 derives ETags from."""

    segment: Segment
    plaintext_md5: bytes
    ciphertext_md5: bytes


def write_segment(
    blobs: BlobStore,
    data_key: bytes,
    pieces: Iterable[bytes],
    verify: Callable[[], None],
    publish: Callable[[WrittenSegment], T],
) -> T:
    """Encrypt ``pieces`` into a new segment file and hand it to ``publish``.

    ``verify`` runs after the last piece and before the file is committed (digest checks);
    ``publish`` runs after the file is durable and should make the metadata point at it. If
    anything raises, including ``publish``, the new file is removed and the error propagates,
    so nothing refers to a partial or orphaned file. Returns what ``publish`` returns.
    """
    salt = os.urandom(SALT_SIZE)
    encryptor = SegmentEncryptor(data_key, salt)
    plaintext_md5 = hashlib.md5(usedforsecurity=False)
    ciphertext_md5 = hashlib.md5(usedforsecurity=False)
    with blobs.writer() as writer:
        for piece in pieces:
            plaintext_md5.update(piece)
            for sealed in encryptor.update(piece):
                ciphertext_md5.update(sealed)
                writer.write(sealed)
        for sealed in encryptor.finalize():
            ciphertext_md5.update(sealed)
            writer.write(sealed)
        verify()
        blob_id = writer.commit()
        written = WrittenSegment(
            Segment(blob_id, salt, encryptor.plaintext_size),
            plaintext_md5.digest(),
            ciphertext_md5.digest(),
        )
        return publish(written)


class SegmentStream:
    """Plaintext bytes ``start..end`` (inclusive) of an object made of ``segments``, as an
    iterable a WSGI server can send piece by piece. ``close`` releases the open files (WSGI
    servers call it when the response ends or the client goes away)."""

    def __init__(
        self,
        blobs: BlobStore,
        segments: tuple[Segment, ...],
        data_key: bytes,
        start: int,
        end: int,
    ) -> None:
        """Raises FileNotFoundError if a segment file is missing (before any byte is sent)."""
        self._blobs = blobs
        self._data_key = data_key
        self._plan: list[tuple[Segment, int, int]] = []
        offset = 0
        for segment in segments:
            segment_end = offset + segment.size - 1
            if segment.size and start <= end and segment_end >= start and offset <= end:
                self._plan.append((segment, max(start - offset, 0), min(end, segment_end) - offset))
            offset += segment.size
        # Opened now, so that an overwrite committed while we stream (which unlinks the old
        # files) cannot pull them away: an open file stays readable after unlink.
        self._files: dict[int, BinaryIO] = {}
        try:
            for index, (segment, _, _) in enumerate(self._plan[:EAGER_OPEN_LIMIT]):
                self._files[index] = blobs.open(segment.blob)
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        for index, (segment, low, high) in enumerate(self._plan):
            source = self._files.pop(index, None) or self._blobs.open(segment.blob)
            with source:
                yield from decrypt_range(
                    source, self._data_key, segment.salt, segment.size, low, high
                )

    def close(self) -> None:
        for source in self._files.values():
            with contextlib.suppress(OSError):
                source.close()
        self._files.clear()


def plaintext_pieces(
    blobs: BlobStore, segments: tuple[Segment, ...], data_key: bytes, size: int
) -> SegmentStream:
    """Every plaintext byte of an object, chunk by chunk (for copies); close it when done.
    Raises FileNotFoundError if a segment file is missing."""
    return SegmentStream(blobs, segments, data_key, 0, size - 1)
