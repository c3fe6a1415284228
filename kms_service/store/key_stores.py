"""Custom key stores (schema version 6; docs/custom-key-stores.md): a mixin of
:class:`kms_service.store.metadata.MetadataStore`."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from kms_service.store.records import KeyStoreRecord
from kms_service.store.tables import StoreTables

_KEY_STORE_COLUMNS = [f.name for f in fields(KeyStoreRecord)]
_KEY_STORE_SELECT = f"SELECT {', '.join(_KEY_STORE_COLUMNS)} FROM custom_key_stores"  # noqa: S608


class KeyStoreTables(StoreTables):
    """Queries on ``custom_key_stores``."""

    def get_key_store(self, store_id: str) -> KeyStoreRecord | None:
        """The key store ``store_id`` (any account), through the per-thread read cache: every
        request on a key of a key store reads its connection state."""
        cache = self._read_cache()
        cache_key = ("key_store", store_id)
        if cache is not None and cache_key in cache:
            cached: KeyStoreRecord | None = cache[cache_key]
            return cached
        row = self._execute(_KEY_STORE_SELECT + " WHERE store_id = ?", (store_id,)).fetchone()
        record = None if row is None else KeyStoreRecord(*row)
        if cache is not None:
            cache[cache_key] = record
        return record

    def key_stores(self, account_id: str, region: str) -> list[KeyStoreRecord]:
        """The key stores of an account and region, and the default one, by store id."""
        rows = self._execute(
            _KEY_STORE_SELECT + " WHERE (account_id = ? AND region = ?)"
            " OR (account_id = '' AND region = '') ORDER BY store_id",
            (account_id, region),
        ).fetchall()
        return [KeyStoreRecord(*row) for row in rows]

    def insert_key_store(self, record: KeyStoreRecord) -> bool:
        """Insert; returns False (and changes nothing) when the id or the name is taken."""
        placeholders = ", ".join("?" for _ in _KEY_STORE_COLUMNS)
        cursor = self._execute(
            f"INSERT OR IGNORE INTO custom_key_stores ({', '.join(_KEY_STORE_COLUMNS)})"  # noqa: S608
            f" VALUES ({placeholders})",
            [getattr(record, name) for name in _KEY_STORE_COLUMNS],
        )
        return cursor.rowcount == 1

    def update_key_store(self, store_id: str, **changes: Any) -> None:
        """Set ``changes`` (column → value) on one key store."""
        unknown = set(changes) - set(_KEY_STORE_COLUMNS)
        if unknown:
            raise ValueError(f"not key store columns: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self._execute(
            f"UPDATE custom_key_stores SET {assignments} WHERE store_id = ?",  # noqa: S608
            [*changes.values(), store_id],
        )

    def delete_key_store(self, store_id: str) -> None:
        self._execute("DELETE FROM custom_key_stores WHERE store_id = ?", (store_id,))

    def count_keys_on_backend(self, backend: str) -> int:
        """Keys (any state, any account) whose material lives on ``backend``."""
        row = self._execute("SELECT count(*) FROM keys WHERE backend = ?", (backend,)).fetchone()
        return int(row[0])
