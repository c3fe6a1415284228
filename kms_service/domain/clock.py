"""The service's notion of "now", in one place so that tests can move it."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime


class Clock:
    """Wall-clock time plus an offset in seconds (0 unless a test moves the clock).

    ``offset_source``, when given, is added on every reading: the offset moved at run time
    (``mock-kms clock advance``), which every worker reads from the database through a
    short cache (:class:`kms_service.operations.shared_settings.SharedSettings`).
    """

    def __init__(
        self, offset_seconds: float = 0.0, offset_source: Callable[[], float] | None = None
    ) -> None:
        self.offset_seconds = offset_seconds
        self.offset_source = offset_source

    def now(self) -> float:
        """Epoch seconds."""
        if self.offset_source is None:
            return time.time() + self.offset_seconds
        return time.time() + self.offset_seconds + self.offset_source()

    def now_datetime(self) -> datetime:
        """A timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)
