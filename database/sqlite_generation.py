"""A cross-process record of metadata writes, cheap enough to read on every request.

Each worker thread keeps the key rows it has read, and must drop them as soon as any process
changes the database. Asking SQLite (``PRAGMA data_version``) costs a statement whose C call
releases the GIL; with four request threads per worker, handing the GIL back and forth around
that one call cost about 15 µs of CPU per request on a 2-core machine (``make bench``, see
CHANGELOG.md). This file answers the same question with two integer reads from shared memory.

The file (16 bytes beside the database, memory-mapped by every process) holds two counters:

* ``begun``: raised by one in every write transaction, while it holds SQLite's write lock and
  before it commits, so it counts every write that may have become visible;
* ``completed``: raised (never lowered) to a transaction's number once it has committed or
  rolled back, under an ``flock`` of the file, since this happens after SQLite's lock is
  released.

Writers are serialised by SQLite, so when both counters are equal every write that began has
ended, and ``begun`` is a token that changes whenever the database may have changed. While they
differ, a write is in flight and nothing may be cached. A writer that dies between its commit
and ``completed`` leaves them unequal (no caching, still correct) until the next write ends and
raises ``completed`` past it.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import struct
from pathlib import Path

_COUNTERS = struct.Struct("<QQ")
_COUNTER = struct.Struct("<Q")
_COMPLETED_OFFSET = 8


class WriteGeneration:
    """The two counters of one database, shared by every process that opens it."""

    def __init__(self, path: Path) -> None:
        """Open (creating if needed) the counter file at ``path``. Raises ``OSError``."""
        self._path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            if os.fstat(fd).st_size < _COUNTERS.size:
                # Extending never changes bytes already there: two processes racing to create
                # the file both leave the same zeroed counters.
                os.ftruncate(fd, _COUNTERS.size)
            # The mapping outlives the descriptor, and stays shared across fork.
            self._map = mmap.mmap(fd, _COUNTERS.size, mmap.MAP_SHARED)
        finally:
            os.close(fd)

    def stable(self) -> int | None:
        """The number of writes begun so far if none is in flight, else None.

        Two reads from shared memory; never blocks and never releases the GIL.
        """
        begun, completed = _COUNTERS.unpack_from(self._map)
        return begun if begun == completed else None

    def begin(self) -> int:
        """Count one more write; returns its number. Call only while holding SQLite's write
        lock (inside ``BEGIN IMMEDIATE``), before anything is committed."""
        number: int = _COUNTER.unpack_from(self._map)[0] + 1
        _COUNTER.pack_into(self._map, 0, number)
        return number

    def complete(self, number: int) -> None:
        """Record that write ``number`` has committed or rolled back.

        Never raises: if the file cannot be locked (removed from under a running service,
        say), the counters stay unequal, which only turns caching off until a later write
        completes.
        """
        # A descriptor of its own each time: flock belongs to the open file, which a fork
        # would otherwise share between processes that must exclude each other.
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CLOEXEC)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            if _COUNTER.unpack_from(self._map, _COMPLETED_OFFSET)[0] < number:
                _COUNTER.pack_into(self._map, _COMPLETED_OFFSET, number)
        except OSError:
            pass
        finally:
            os.close(fd)  # releases the lock
