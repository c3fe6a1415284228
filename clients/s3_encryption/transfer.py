"""What every transfer of one encrypted object shares: the request arguments repeated on each
of its requests, reading an upload in parts, reading a download's body, HTTP ranges, and
decrypting a body chunk by chunk. Stateless functions, used by :mod:`.upload` and
:mod:`.download`."""

from __future__ import annotations

import importlib
import io
import os
import re
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any

from clients.s3_encryption.body import DEFAULT_CHUNK_SIZE
from clients.s3_encryption.content import (
    ContentDecryptor,
    CtrRangeDecryptor,
    GcmContentDecryptor,
)
from clients.s3_encryption.errors import InvalidRangeError, S3EncryptionError, TruncatedObjectError
from clients.s3_encryption.formats import GCM_TAG_LENGTH

ProgressCallback = Callable[[int], None]

# Arguments that must accompany every request touching the object (SSE-C layered under CSE,
# bucket-owner and requester-pays checks), so they are repeated on parts and instruction files.
PER_REQUEST_ARGS = (
    "SSECustomerAlgorithm",
    "SSECustomerKey",
    "SSECustomerKeyMD5",
    "ExpectedBucketOwner",
    "RequestPayer",
)
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def per_request_args(request_args: Mapping[str, Any]) -> dict[str, Any]:
    """The arguments of ``request_args`` that every request of the object repeats."""
    return {k: v for k, v in request_args.items() if k in PER_REQUEST_ARGS}


def _botocore_stream_errors() -> tuple[type[BaseException], ...]:
    # botocore raises these when a download ends early; imported lazily so the package does
    # not need botocore unless a botocore client is used.
    try:
        module = importlib.import_module("botocore.exceptions")
    except ImportError:
        return ()
    names = ("IncompleteReadError", "ResponseStreamingError")
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


_STREAM_ERRORS = _botocore_stream_errors()


def read_full(fileobj: IO[bytes], size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first (pipes return short reads)."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_part(fileobj: IO[bytes], buffer: memoryview) -> memoryview | bytes:
    """The next ``len(buffer)`` bytes of the stream (fewer only at its end).

    Read into ``buffer`` (reused for every part, so no part costs a fresh allocation) when
    the stream has ``readinto``; otherwise the stream's own ``read`` result.
    """
    filled = 0
    try:
        while filled < len(buffer):
            count = fileobj.readinto(buffer[filled:])  # type: ignore[attr-defined]
            if not count:
                break
            filled += count
    except (AttributeError, NotImplementedError, io.UnsupportedOperation):
        if filled:
            raise
        return read_full(fileobj, len(buffer))
    return buffer[:filled]


def remaining_length(fileobj: IO[bytes]) -> int | None:
    """Bytes left in a seekable stream, or None if it cannot tell."""
    try:
        position = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(position)
    except (OSError, AttributeError, ValueError):
        return None
    return max(0, end - position)


def read_body(body: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of an S3 response body; a download that ends early is a TruncatedObjectError."""
    while True:
        try:
            chunk = body.read(chunk_size)
        except _STREAM_ERRORS as exc:
            raise TruncatedObjectError(f"download ended before the whole object: {exc}") from exc
        if not chunk:
            return
        yield chunk


def parse_range(spec: str) -> tuple[int | None, int | None]:
    """``bytes=a-b`` -> (a, b); ``bytes=a-`` -> (a, None); ``bytes=-n`` -> (None, n)."""
    match = _RANGE_PATTERN.match(spec.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise InvalidRangeError(f"unsupported Range {spec!r}: use bytes=a-b, bytes=a- or bytes=-n")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        raise InvalidRangeError(f"Range {spec!r} ends before it starts")
    return first, last


def content_range(response: Mapping[str, Any]) -> tuple[int, int]:
    """(first byte offset, total object length) of a GET response, ranged or not."""
    header = response.get("ContentRange")
    if not header:
        return 0, int(response["ContentLength"])
    match = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", str(header))
    if match is None:
        raise S3EncryptionError(f"S3 returned an unparseable Content-Range {header!r}")
    return int(match.group(1)), int(match.group(3))


def decrypt_chunks(
    body: Any, decryptor: ContentDecryptor, callback: ProgressCallback | None = None
) -> Iterator[bytes | memoryview]:
    """Plaintext chunks of ``body``. GCM chunks are views of one reused buffer: each is
    valid only until the next one is requested (consumers copy or write it at once)."""
    if isinstance(decryptor, GcmContentDecryptor):
        yield from _decrypt_gcm_chunks(body, decryptor, callback)
        return
    for chunk in read_body(body):
        plaintext = decryptor.update(chunk)
        if plaintext:
            if callback is not None:
                callback(len(plaintext))
            yield plaintext
    plaintext = decryptor.finalize()
    if plaintext:
        if callback is not None:
            callback(len(plaintext))
        yield plaintext


def _decrypt_gcm_chunks(
    body: Any, decryptor: GcmContentDecryptor, callback: ProgressCallback | None
) -> Iterator[bytes | memoryview]:
    buffer = bytearray(DEFAULT_CHUNK_SIZE + GCM_TAG_LENGTH)
    for chunk in read_body(body):
        if len(buffer) < len(chunk) + GCM_TAG_LENGTH:
            buffer = bytearray(len(chunk) + GCM_TAG_LENGTH)
        written = decryptor.update_into(chunk, buffer)
        if written:
            if callback is not None:
                callback(written)
            with memoryview(buffer) as view, view[:written] as plaintext:
                yield plaintext
    plaintext_tail = decryptor.finalize()
    if plaintext_tail:
        if callback is not None:
            callback(len(plaintext_tail))
        yield plaintext_tail


def decrypt_ctr_slice(
    body: Any, decryptor: CtrRangeDecryptor, skip: int, wanted: int
) -> Iterator[bytes]:
    """CTR-decrypt the body, drop ``skip`` leading bytes and stop after ``wanted`` bytes."""
    for chunk in read_body(body):
        plaintext = decryptor.update(chunk)
        if skip:
            dropped = min(skip, len(plaintext))
            plaintext, skip = plaintext[dropped:], skip - dropped
        if plaintext:
            plaintext = plaintext[:wanted]
            wanted -= len(plaintext)
            yield plaintext
        if wanted == 0:
            return
    raise TruncatedObjectError("download ended before the requested range")
