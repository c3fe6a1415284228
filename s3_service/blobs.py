"""Segment files: written once under a fresh random name, never modified, deleted when no
object or part refers to them any more.

A write goes to ``tmp/<id>.tmp``, is fsynced, renamed to ``blobs/<id[:2]>/<id>`` and the
directory fsynced; only then does the metadata database point at it. A crash at any moment
therefore leaves the database pointing at the old, complete files; what it leaves behind is
unreferenced files, which :meth:`BlobStore.sweep` removes on the next start.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

_WRITE_BUFFER = 1024 * 1024


class BlobStore:
    """Segment files under ``root`` (``root/blobs`` and ``root/tmp``)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blob_dir = root / "blobs"
        self.tmp_dir = root / "tmp"

    def initialise(self) -> None:
        """Create the directories (0700: object data is nobody else's business)."""
        for directory in (self.root, self.blob_dir, self.tmp_dir):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def path(self, blob_id: str) -> Path:
        return self.blob_dir / blob_id[:2] / blob_id

    def writer(self) -> BlobWriter:
        """A new segment file; use as a context manager, which discards it unless committed."""
        return BlobWriter(self)

    def open(self, blob_id: str) -> BinaryIO:
        """Open a committed segment for reading. Raises FileNotFoundError."""
        return self.path(blob_id).open("rb")

    def delete(self, blob_ids: Iterable[str]) -> None:
        """Remove segment files; already missing ones are fine (a sweep may have run)."""
        for blob_id in blob_ids:
            with contextlib.suppress(FileNotFoundError):
                self.path(blob_id).unlink()

    def sweep(self, referenced: set[str], *, grace_seconds: float) -> int:
        """Remove temporary files and unreferenced segments older than ``grace_seconds``.

        The grace period protects another server process sharing the data directory, whose
        in-flight writes look exactly like leftovers. Returns how many files were removed.
        """
        cutoff = time.time() - grace_seconds
        removed = 0
        candidates = list(self.tmp_dir.glob("*.tmp"))
        candidates.extend(path for path in self.blob_dir.glob("*/*") if path.name not in referenced)
        for path in candidates:
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
        return removed


class BlobWriter:
    """One segment file being written. :meth:`commit` makes it durable and visible under its
    id; leaving the ``with`` block without committing removes the temporary file."""

    def __init__(self, store: BlobStore) -> None:
        self._store = store
        self.blob_id = secrets.token_hex(16)
        self._tmp = store.tmp_dir / f"{self.blob_id}.tmp"
        fd = os.open(self._tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=_WRITE_BUFFER)
        self.committed = False

    def write(self, data: bytes) -> None:
        self._file.write(data)

    def commit(self) -> str:
        """fsync, rename into place, fsync the directory; returns the blob id.

        Raises OSError if the disk refuses (the temporary file is then removed on exit).
        """
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        final = self._store.path(self.blob_id)
        final.parent.mkdir(mode=0o700, exist_ok=True)
        os.rename(self._tmp, final)
        _fsync_directory(final.parent)
        self.committed = True
        return self.blob_id

    def discard(self) -> None:
        """Drop the file, committed or not (used when the metadata update then fails)."""
        if not self._file.closed:
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
        if self.committed:
            self._store.delete([self.blob_id])
            self.committed = False

    def __enter__(self) -> BlobWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if not self.committed or kind is not None:
            self.discard()


def _fsync_directory(directory: Path) -> None:
    # The rename is only durable once the directory entry is on disk.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
