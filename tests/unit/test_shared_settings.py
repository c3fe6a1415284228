"""Settings shared by every worker through the store, and the clock that reads its offset."""

from __future__ import annotations

from pathlib import Path

from kms_service.admin.shared_settings import CLOCK_OFFSET, SharedSettings
from kms_service.domain.clock import Clock
from kms_service.store import MetadataStore


def test_shared_settings_cache_and_clock(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.initialise()
    other = MetadataStore(tmp_path)  # another worker
    mine = SharedSettings(store, cache_seconds=60)
    theirs = SharedSettings(other, cache_seconds=0)
    clock = Clock(10.0, theirs.clock_offset)
    before = clock.now()
    assert mine.clock_offset() == 0.0
    mine.set(CLOCK_OFFSET, repr(86400.0))
    assert mine.clock_offset() == 86400.0
    assert clock.now() - before >= 86400.0
    theirs.set(CLOCK_OFFSET, None)
    assert mine.clock_offset() == 86400.0  # within its cache time, a stale view is allowed
    store.close()
    other.close()
