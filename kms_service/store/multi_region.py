"""Multi-Region key members (schema step "multi-Region keys"): a mixin of
:class:`kms_service.store.metadata.MetadataStore`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from kms_service.domain.key_states import KeyState
from kms_service.store.records import KeyRecord, MultiRegionMember
from kms_service.store.tables import StoreTables

_SECONDS_PER_DAY = 86400.0

#: The key columns every key of a multi-Region key shares (AWS synchronises the automatic
#: rotation status; docs/multi-region-keys.md): an update of one is an update of all.
MULTI_REGION_SHARED_COLUMNS = frozenset(
    {"rotation_enabled", "rotation_period_days", "next_rotation_date", "on_demand_rotations"}
)


class MultiRegionTables(StoreTables):
    """Queries on ``multi_region_members`` and the material rows replicas share."""

    if TYPE_CHECKING:
        # Provided by MetadataStore, which this class is mixed into.
        def get_key(self, account_id: str, region: str, key_id: str) -> KeyRecord | None: ...

        def update_key(self, key: KeyRecord, **changes: Any) -> None: ...

    def multi_region_members(self, account_id: str, key_id: str) -> list[MultiRegionMember]:
        """The keys of the multi-Region key ``key_id``, primary first; empty for a key with
        no replicas (it is its own primary)."""
        rows = self._execute(
            "SELECT region, role, pending_window_days FROM multi_region_members"
            " WHERE account_id = ? AND key_id = ? ORDER BY role = 'REPLICA', region",
            (account_id, key_id),
        ).fetchall()
        return [MultiRegionMember(row[0], row[1], row[2]) for row in rows]

    def set_multi_region_member(
        self,
        account_id: str,
        key_id: str,
        region: str,
        role: str,
        pending_window_days: int | None = None,
    ) -> None:
        """Record (or change) the role of the key ``key_id`` in ``region``."""
        self._execute(
            "INSERT INTO multi_region_members"
            " (account_id, key_id, region, role, pending_window_days) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (account_id, key_id, region) DO UPDATE SET role = excluded.role,"
            " pending_window_days = excluded.pending_window_days",
            (account_id, key_id, region, role, pending_window_days),
        )

    def copy_materials(self, source: KeyRecord, target: KeyRecord) -> None:
        """Give ``target`` (a new replica) the material rows of ``source``: the same ids,
        sequence numbers, dates and rotation types, so both keys use the same material."""
        self._execute(
            "INSERT INTO key_materials"
            " (account_id, region, key_id, seq, material_id, created, rotation_type)"
            " SELECT ?, ?, ?, seq, material_id, created, rotation_type FROM key_materials"
            " WHERE account_id = ? AND region = ? AND key_id = ?",
            (
                target.account_id,
                target.region,
                target.key_id,
                source.account_id,
                source.region,
                source.key_id,
            ),
        )

    def _after_member_deleted(self, key: KeyRecord) -> None:
        """After ``key`` (a key of a multi-Region key) is deleted: when no replica is left,
        a primary in PendingReplicaDeletion moves to PendingDeletion, its window counted
        from the deletion date of the replica just deleted, as AWS starts it when the last
        replica is deleted; and a primary with no replicas needs no member row."""
        members = self.multi_region_members(key.account_id, key.key_id)
        if any(member.role == "REPLICA" for member in members):
            return
        for member in members:
            primary = self.get_key(key.account_id, member.region, key.key_id)
            if (
                primary is not None
                and primary.state == KeyState.PENDING_REPLICA_DELETION
                and member.pending_window_days is not None
            ):
                # A replica is deleted only when its scheduled date has passed, so it has one;
                # wall time is a fallback for a deletion outside the lifecycle (none today).
                start = key.deletion_date if key.deletion_date is not None else time.time()
                self.update_key(
                    primary,
                    state=KeyState.PENDING_DELETION,
                    deletion_date=start + member.pending_window_days * _SECONDS_PER_DAY,
                )
        self._execute(
            "DELETE FROM multi_region_members WHERE account_id = ? AND key_id = ?",
            (key.account_id, key.key_id),
        )
