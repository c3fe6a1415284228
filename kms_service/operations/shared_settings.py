"""Service-wide settings that every gunicorn worker must agree on: the movable clock's offset
and the fault-injection rules.

They live in the SQLite database (table ``service_settings``), so a change made through one
worker's admin endpoint reaches all of them. Each process reads the whole (tiny) table at most
once per :data:`CACHE_SECONDS`, so the hot path costs a monotonic-clock comparison; whoever
changes a value waits :attr:`SharedSettings.propagation_seconds` before answering, after which
every worker is guaranteed to see it.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import TYPE_CHECKING

from database import DatabaseError
from kms_service.store import MetadataStore

if TYPE_CHECKING:
    from kms_service.operations import Services

log = logging.getLogger("mock_kms.shared_settings")

#: How stale a worker's view may be. Small enough that the admin endpoints can simply wait it
#: out; large enough that a busy worker reads the table only a few times a second.
CACHE_SECONDS = 0.1
CLOCK_OFFSET = "clock_offset_seconds"
FAULTS = "faults"


class SharedSettings:
    """A per-process, read-mostly view of ``service_settings``. Thread-safe."""

    def __init__(self, store: MetadataStore, cache_seconds: float = CACHE_SECONDS) -> None:
        self._store = store
        self._cache_seconds = cache_seconds
        # (expiry on the monotonic clock, the store's cache token when read, values); replaced
        # whole, so readers need no lock.
        self._snapshot: tuple[float, object | None, dict[str, str]] = (-math.inf, None, {})
        self._offset_cache: tuple[str, float] = ("", 0.0)
        self._write_lock = threading.Lock()

    @property
    def propagation_seconds(self) -> float:
        """After a change, how long until every worker has seen it."""
        return self._cache_seconds

    def values(self) -> dict[str, str]:
        """All settings, at most :data:`CACHE_SECONDS` old.

        A database error keeps the previous values (and is retried on the next call): a busy
        database must not fail requests that only wanted the clock.
        """
        expires, token, values = self._snapshot
        now = time.monotonic()
        if now < expires:
            return values
        # No write anywhere since the last read (the store's cache token, which every write on
        # every host changes): the values still hold, with no query. So a fleet of hosts does
        # not read the table ten times a second per worker for nothing.
        current = self._store.cache_token()
        if current is not None and current == token:
            self._snapshot = (now + self._cache_seconds, token, values)
            return values
        try:
            values = self._store.service_settings()
        except DatabaseError as exc:
            log.warning("cannot read service settings, keeping the previous ones: %s", exc)
            current = None
        self._snapshot = (now + self._cache_seconds, current, values)
        return values

    def get(self, name: str) -> str | None:
        return self.values().get(name)

    def set(self, name: str, value: str | None) -> None:
        """Store ``value`` (None removes it) and refresh this process's view at once.

        Raises :class:`database.DatabaseError` if the database cannot be written.
        """
        with self._write_lock:
            with self._store.write():
                self._store.set_service_setting(name, value)
            token = self._store.cache_token()
            self._snapshot = (
                time.monotonic() + self._cache_seconds,
                token,
                self._store.service_settings(),
            )

    def clock_offset(self) -> float:
        """The run-time clock offset in seconds (0 when never moved)."""
        raw = self.values().get(CLOCK_OFFSET, "")
        cached_raw, cached_value = self._offset_cache
        if raw == cached_raw:
            return cached_value
        try:
            value = float(raw) if raw else 0.0
        except ValueError:
            value = 0.0
        self._offset_cache = (raw, value)
        return value


def attach_shared_settings(services: Services) -> SharedSettings:
    """Give ``services``' clock the shared run-time offset; returns the shared view."""
    shared = SharedSettings(services.store)
    services.clock.offset_source = shared.clock_offset
    return shared
