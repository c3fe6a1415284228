"""Alias rows: a mixin of :class:`kms_service.store.metadata.MetadataStore`."""

from __future__ import annotations

from typing import Any

from kms_service.store.records import AliasRecord, KeyRecord
from kms_service.store.tables import StoreTables


class AliasTables(StoreTables):
    """Alias queries over the store's per-thread connection."""

    def get_alias(self, account_id: str, region: str, alias_name: str) -> AliasRecord | None:
        row = self._execute(
            "SELECT account_id, region, alias_name, target_key_id, creation_date,"
            " last_updated_date FROM aliases"
            " WHERE account_id = ? AND region = ? AND alias_name = ?",
            (account_id, region, alias_name),
        ).fetchone()
        return None if row is None else AliasRecord(*row)

    def insert_alias(self, alias: AliasRecord) -> bool:
        """Insert; returns False (and changes nothing) when the name is taken."""
        cursor = self._execute(
            "INSERT OR IGNORE INTO aliases (account_id, region, alias_name, target_key_id,"
            " creation_date, last_updated_date) VALUES (?, ?, ?, ?, ?, ?)",
            (
                alias.account_id,
                alias.region,
                alias.alias_name,
                alias.target_key_id,
                alias.creation_date,
                alias.last_updated_date,
            ),
        )
        return cursor.rowcount == 1

    def retarget_alias(self, alias: AliasRecord, target_key_id: str, now: float) -> None:
        self._execute(
            "UPDATE aliases SET target_key_id = ?, last_updated_date = ?"
            " WHERE account_id = ? AND region = ? AND alias_name = ?",
            (target_key_id, now, alias.account_id, alias.region, alias.alias_name),
        )

    def delete_alias(self, alias: AliasRecord) -> None:
        self._execute(
            "DELETE FROM aliases WHERE account_id = ? AND region = ? AND alias_name = ?",
            (alias.account_id, alias.region, alias.alias_name),
        )

    def count_aliases(self, key: KeyRecord) -> int:
        return int(
            self._execute(
                "SELECT count(*) FROM aliases WHERE account_id = ? AND region = ?"
                " AND target_key_id = ?",
                (key.account_id, key.region, key.key_id),
            ).fetchone()[0]
        )

    def list_aliases(
        self, account_id: str, region: str, key_id: str | None, after: str | None, limit: int
    ) -> list[AliasRecord]:
        sql = (
            "SELECT account_id, region, alias_name, target_key_id, creation_date,"
            " last_updated_date FROM aliases WHERE account_id = ? AND region = ?"
            " AND alias_name > ?"
        )
        params: list[Any] = [account_id, region, after or ""]
        if key_id is not None:
            sql += " AND target_key_id = ?"
            params.append(key_id)
        sql += " ORDER BY alias_name LIMIT ?"
        params.append(limit)
        return [AliasRecord(*row) for row in self._execute(sql, params).fetchall()]

    def all_aliases(self) -> list[AliasRecord]:
        """Every alias of every account and region, in a stable order."""
        rows = self._execute(
            "SELECT account_id, region, alias_name, target_key_id, creation_date,"
            " last_updated_date FROM aliases ORDER BY account_id, region, alias_name"
        )
        return [AliasRecord(*row) for row in rows.fetchall()]
