"""A file-like body for decrypted objects, shaped like botocore's ``StreamingBody``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from types import TracebackType

DEFAULT_CHUNK_SIZE = 256 * 1024


class PlaintextBody:
    """Plaintext of a decrypted object: ``read``, ``iter_chunks``, iteration, ``close``.

    Backed by an iterator of chunks, so at most one chunk (plus what a caller asks for) is
    held in memory. Errors the source raises (for example TamperedObjectError at the end of
    a delayed-authentication stream) surface from ``read`` / iteration.
    """

    def __init__(
        self,
        chunks: Iterator[bytes | memoryview],
        close: Callable[[], None] | None = None,
        content_length: int | None = None,
    ) -> None:
        self._chunks = chunks
        self._close = close
        self._buffer = bytearray()
        self._exhausted = False
        self._closed = False
        self.content_length = content_length

    def readable(self) -> bool:
        """Always True: this is a readable stream."""
        return True

    def _fill(self, wanted: int | None) -> None:
        while not self._exhausted and (wanted is None or len(self._buffer) < wanted):
            try:
                self._buffer += next(self._chunks)
            except StopIteration:
                self._exhausted = True

    def read(self, amt: int | None = None) -> bytes:
        """Up to ``amt`` bytes (all remaining if None); ``b""`` at the end of the object."""
        if amt is not None and amt < 0:
            amt = None
        self._fill(amt)
        if amt is None:
            data = bytes(self._buffer)
            self._buffer.clear()
        else:
            data = bytes(self._buffer[:amt])
            del self._buffer[:amt]
        return data

    def iter_chunks(self, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
        """Yield the remaining plaintext in chunks of at most ``chunk_size`` bytes."""
        while True:
            chunk = self.read(chunk_size)
            if not chunk:
                return
            yield chunk

    def __iter__(self) -> Iterator[bytes]:
        return self.iter_chunks()

    def close(self) -> None:
        """Release the underlying download or buffer. Idempotent."""
        if not self._closed:
            self._closed = True
            self._buffer.clear()
            if self._close is not None:
                self._close()

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def __enter__(self) -> PlaintextBody:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
