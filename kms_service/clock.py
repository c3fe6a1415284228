"""The service's notion of "now", in one place so that tests can move it."""

from __future__ import annotations

import time
from datetime import UTC, datetime


class Clock:
    """Wall-clock time plus an offset in seconds (0 unless a test moves the clock)."""

    def __init__(self, offset_seconds: float = 0.0) -> None:
        self.offset_seconds = offset_seconds

    def now(self) -> float:
        """Epoch seconds."""
        return time.time() + self.offset_seconds

    def now_datetime(self) -> datetime:
        """A timezone-aware UTC datetime."""
        return datetime.fromtimestamp(self.now(), UTC)
