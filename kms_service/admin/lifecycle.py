"""What the developer endpoints do to the service: move the clock, wipe the state."""

from __future__ import annotations

import math
from dataclasses import dataclass

from kms_service.domain.key_states import KeyState
from kms_service.operations import Services
from kms_service.operations.importing import purge_expired_wrapping_keys
from kms_service.operations.material import destroy_pending_material
from kms_service.operations.resolve import apply_due_lifecycle
from kms_service.operations.shared_settings import CLOCK_OFFSET, FAULTS, SharedSettings


@dataclass(frozen=True)
class LifecycleSweep:
    rotated: int
    deleted: int
    #: Keys whose imported material expired (now PendingImport).
    expired: int = 0


def clock_state(services: Services, shared: SharedSettings) -> dict[str, float | str]:
    """The clock as the admin endpoint reports it."""
    start = services.settings.clock_offset_seconds
    moved = shared.clock_offset()
    return {
        "offset_seconds": start + moved,
        "moved_offset_seconds": moved,
        "start_offset_seconds": start,
        "now": services.clock.now_datetime().isoformat().replace("+00:00", "Z"),
        "now_epoch_seconds": services.clock.now(),
    }


def move_clock(shared: SharedSettings, moved_offset_seconds: float) -> None:
    """Set the run-time offset for every worker (raises :class:`database.DatabaseError`)."""
    shared.set(CLOCK_OFFSET, repr(moved_offset_seconds) if moved_offset_seconds else None)


def sweep_due_lifecycle(services: Services) -> LifecycleSweep:
    """Apply every automatic rotation, scheduled deletion and expiry of imported material
    that has come due, in every
    account, as if time had passed with a background job running (the lazy path would do
    the same on each key's next use)."""
    rotated = deleted = expired = 0
    for key in services.store.all_keys():
        after = apply_due_lifecycle(services, key)
        if after is None:
            deleted += 1
        elif after.current_material_id != key.current_material_id:
            rotated += 1
        elif after.state == KeyState.PENDING_IMPORT and key.state != KeyState.PENDING_IMPORT:
            expired += 1
    return LifecycleSweep(rotated, deleted, expired)


def wipe_state(services: Services, shared: SharedSettings) -> int:
    """Delete every key, alias, tag and piece of key material; set the clock back and clear
    the fault rules. Returns the number of keys deleted."""
    with services.store.write():
        keys = services.store.all_keys()
        for key in keys:
            services.store.delete_key(key)
    destroy_pending_material(services)
    purge_expired_wrapping_keys(services, cutoff=math.inf)  # import wrapping keys too
    shared.set(CLOCK_OFFSET, None)
    shared.set(FAULTS, None)
    return len(keys)
