"""The key store: every piece of KMS metadata, on SQLite (embedded default) or PostgreSQL.

One implementation over :mod:`database` (statements written once, ``?`` placeholders). Every
state change runs inside :meth:`MetadataStore.write`, one transaction in which writers of
every process and host are serialised: concurrent writers queue and re-read what they change,
so no update is lost and a crash leaves either the old state or the new one.

This module is the core (transactions, read cache, initialising) and the keys, key materials
and tags; the other areas' queries are mixins (:mod:`kms_service.store.tables`), the rows are in
:mod:`kms_service.store.records` and the schema steps in :mod:`kms_service.store.migrations`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import fields
from importlib import resources
from pathlib import Path
from typing import Any

from database import Database, DatabaseError, Rows, open_database
from kms_service.domain.key_states import KeyState
from kms_service.store.aliases import AliasTables
from kms_service.store.grants import GrantTables
from kms_service.store.imports import ImportTables
from kms_service.store.key_stores import KeyStoreTables
from kms_service.store.migrations import SCHEMA_VERSION, apply_schema_steps
from kms_service.store.multi_region import MULTI_REGION_SHARED_COLUMNS, MultiRegionTables
from kms_service.store.records import KeyRecord, MaterialRecord
from kms_service.store.service_settings import ServiceSettingsTables

__all__ = ["DATABASE_FILE", "SCHEMA_VERSION", "MetadataStore", "StoreError"]

DATABASE_FILE = "mock-kms.sqlite3"
#: The store's name among the schemas that share a PostgreSQL database.
SCHEMA_COMPONENT = "kms"
#: Rows one thread may keep between database changes (see ``MetadataStore._read_cache``).
_READ_CACHE_LIMIT = 4096


class StoreError(Exception):
    """The database cannot be opened or used."""


_KEY_COLUMNS = [f.name for f in fields(KeyRecord) if f.name != "current_material_id"]
_KEY_SELECT = (
    "SELECT "  # noqa: S608 - built from constant column names
    + ", ".join(f"k.{name}" for name in _KEY_COLUMNS)
    + ", (SELECT material_id FROM key_materials m WHERE m.account_id = k.account_id"
    " AND m.region = k.region AND m.key_id = k.key_id ORDER BY seq DESC LIMIT 1)"
    " FROM keys k"
)


def _key_from_row(row: Sequence[Any]) -> KeyRecord:
    values = dict(zip(_KEY_COLUMNS, row, strict=False))
    values["multi_region"] = bool(values["multi_region"])
    values["rotation_enabled"] = bool(values["rotation_enabled"])
    values["state"] = KeyState(values["state"])
    return KeyRecord(**values, current_material_id=row[len(_KEY_COLUMNS)])


class MetadataStore(
    GrantTables,
    AliasTables,
    MultiRegionTables,
    ImportTables,
    KeyStoreTables,
    ServiceSettingsTables,
):
    """Keys, key-material versions, aliases and tags, scoped by account and region."""

    def __init__(self, data_dir: Path, database_url: str | None = None) -> None:
        """The store in ``database_url`` (PostgreSQL) if given, else SQLite in ``data_dir``.
        Nothing is opened until first use."""
        self._path = data_dir / DATABASE_FILE
        self._db: Database = open_database(database_url or self._path, generation=True)
        self._local = threading.local()

    @property
    def path(self) -> Path:
        """The SQLite file (meaningful only when :attr:`engine` is ``sqlite``)."""
        return self._path

    @property
    def database(self) -> Database:
        return self._db

    @property
    def engine(self) -> str:
        return self._db.engine

    @property
    def description(self) -> str:
        """The file, or the URL without its password."""
        return self._db.description

    def initialise(self) -> None:
        """Create the schema if needed and bring an older one up to :data:`SCHEMA_VERSION`,
        in one transaction. Raises :class:`StoreError` (unreachable database, or a schema
        written by a newer mock-kms)."""
        schema = resources.files("kms_service.store").joinpath("schema.sql").read_text()
        try:
            with self.write():
                version = self._db.schema_version(SCHEMA_COMPONENT)
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.description} was written by a newer mock-kms (schema {version},"
                        f" this one knows {SCHEMA_VERSION}): upgrade mock-kms"
                    )
                self._db.run_script(schema)
                apply_schema_steps(self._db)
                self._db.set_schema_version(SCHEMA_COMPONENT, SCHEMA_VERSION)
        except DatabaseError as exc:
            raise StoreError(f"cannot open database {exc}") from None

    def _read_cache(self) -> dict[tuple[str, ...], Any] | None:
        """This thread's cache of rows read outside transactions, emptied whenever the
        database may have changed since they were read (on any host); None while that cannot
        be known (a write in flight, a lost notification channel) and inside a transaction,
        whose reads must see its own uncommitted writes and must not outlive a rollback.

        The check costs no database round trip (:meth:`database.Database.cache_token`): so a
        key disabled through one worker or host is refused by every other on its next request.
        """
        token = self._db.cache_token()
        if token is None:
            return None
        local = self._local
        cache: dict[tuple[str, ...], Any] | None = getattr(local, "cache", None)
        if cache is None or token != local.cache_token or len(cache) >= _READ_CACHE_LIMIT:
            cache = local.cache = {}
            local.cache_token = token
        return cache

    def cache_token(self) -> object | None:
        """The database's cache token (see :meth:`database.Database.cache_token`)."""
        return self._db.cache_token()

    def close(self) -> None:
        """Release this thread's connection."""
        self._db.close()
        self._local.cache = None

    def dispose(self) -> None:
        """Release everything this process holds of the database (before a fork)."""
        self._db.dispose()
        self._local.cache = None

    @contextmanager
    def write(self) -> Iterator[None]:
        """One write transaction; nested calls join the outer one."""
        with self._db.transaction():
            yield

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        return self._db.execute(sql, params)

    def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        self._db.executemany(sql, rows)

    # --- keys --------------------------------------------------------------------------
    def get_key(self, account_id: str, region: str, key_id: str) -> KeyRecord | None:
        cache = self._read_cache()
        cache_key = ("key", account_id, region, key_id)
        if cache is not None:
            cached: KeyRecord | None = cache.get(cache_key)
            if cached is not None:
                return cached
        row = self._execute(
            _KEY_SELECT + " WHERE k.account_id = ? AND k.region = ? AND k.key_id = ?",
            (account_id, region, key_id),
        ).fetchone()
        key = None if row is None else _key_from_row(row)
        if cache is not None and key is not None:
            # Only keys that exist: ids that do not cannot grow the cache (it is bounded
            # anyway), and a miss stays a plain query.
            cache[cache_key] = key
        return key

    def insert_key(self, key: KeyRecord) -> None:
        placeholders = ", ".join("?" for _ in _KEY_COLUMNS)
        self._execute(
            f"INSERT INTO keys ({', '.join(_KEY_COLUMNS)}) VALUES ({placeholders})",  # noqa: S608
            [getattr(key, name) for name in _KEY_COLUMNS],
        )

    def update_key(self, key: KeyRecord, **changes: Any) -> None:
        """Set ``changes`` (column → value) on one key."""
        unknown = set(changes) - set(_KEY_COLUMNS)
        if unknown:
            raise ValueError(f"not key columns: {sorted(unknown)}")
        assignments = ", ".join(f"{name} = ?" for name in changes)
        self._execute(
            f"UPDATE keys SET {assignments} "  # noqa: S608 - column names checked above
            "WHERE account_id = ? AND region = ? AND key_id = ?",
            [*changes.values(), key.account_id, key.region, key.key_id],
        )
        shared = {
            name: value for name, value in changes.items() if name in MULTI_REGION_SHARED_COLUMNS
        }
        if shared and key.multi_region:
            assignments = ", ".join(f"{name} = ?" for name in shared)
            self._execute(
                f"UPDATE keys SET {assignments} "  # noqa: S608 - column names checked above
                "WHERE account_id = ? AND key_id = ? AND region IN (SELECT region FROM"
                " multi_region_members WHERE account_id = ? AND key_id = ?)",
                [*shared.values(), key.account_id, key.key_id, key.account_id, key.key_id],
            )

    def delete_key(self, key: KeyRecord) -> list[str]:
        """Delete a key with its materials, tags and aliases; return its material ids.

        The material ids are queued in ``pending_destruction`` in the same transaction, so the
        backend objects are destroyed even if the process dies right after the commit. Material
        another key still uses (the other keys of a multi-Region key) is neither returned nor
        queued: it is destroyed with the last key that uses it. Deleting the last replica of a
        primary in PendingReplicaDeletion starts the primary's deletion window
        (:meth:`_after_member_deleted`).
        """
        scope = (key.account_id, key.region, key.key_id)
        # Imported material pending rotation is not in key_materials yet: queued as well.
        material_ids = [
            row[0]
            for row in self._execute(
                "SELECT material_id FROM key_materials"
                " WHERE account_id = ? AND region = ? AND key_id = ?"
                " UNION SELECT material_id FROM imported_materials"
                " WHERE account_id = ? AND region = ? AND key_id = ?",
                scope + scope,
            )
        ]
        self._execute(
            "DELETE FROM aliases WHERE account_id = ? AND region = ? AND target_key_id = ?", scope
        )
        self._execute("DELETE FROM keys WHERE account_id = ? AND region = ? AND key_id = ?", scope)
        unused = [
            material_id
            for material_id in material_ids
            if self._execute(
                "SELECT 1 FROM key_materials WHERE material_id = ? LIMIT 1", (material_id,)
            ).fetchone()
            is None
        ]
        self._executemany(
            "INSERT OR IGNORE INTO pending_destruction (material_id, backend) VALUES (?, ?)",
            [(material_id, key.backend) for material_id in unused],
        )
        if key.multi_region:
            self._after_member_deleted(key)
        return unused

    def list_keys(
        self, account_id: str, region: str, after: str | None, limit: int
    ) -> list[tuple[str, str]]:
        """``(key_id, backend)`` pairs sorted by key id, starting after ``after``."""
        rows = self._execute(
            "SELECT key_id, backend FROM keys WHERE account_id = ? AND region = ?"
            " AND key_id > ? ORDER BY key_id LIMIT ?",
            (account_id, region, after or "", limit),
        ).fetchall()
        return [(row[0], row[1]) for row in rows]

    def keys_due_for_deletion(self, account_id: str, region: str, now: float) -> list[str]:
        rows = self._execute(
            "SELECT key_id FROM keys WHERE account_id = ? AND region = ?"
            " AND state = ? AND deletion_date <= ?",
            (account_id, region, KeyState.PENDING_DELETION, now),
        ).fetchall()
        return [row[0] for row in rows]

    # --- key materials -----------------------------------------------------------------
    def add_material(
        self, key: KeyRecord, material_id: str, created: float, rotation_type: str | None
    ) -> int:
        """Append a material version to ``key`` and to every other key of its multi-Region
        key (they share material: a rotation of one is a rotation of all); returns its
        sequence number in ``key``."""
        regions = [key.region]
        if key.multi_region:
            regions += [
                member.region
                for member in self.multi_region_members(key.account_id, key.key_id)
                if member.region != key.region
            ]
        seq = 0
        for region in regions:
            scope = (key.account_id, region, key.key_id)
            next_seq = self._execute(
                "SELECT coalesce(max(seq) + 1, 0) FROM key_materials"
                " WHERE account_id = ? AND region = ? AND key_id = ?",
                scope,
            ).fetchone()[0]
            self._execute(
                "INSERT INTO key_materials"
                " (account_id, region, key_id, seq, material_id, created, rotation_type)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                (*scope, next_seq, material_id, created, rotation_type),
            )
            if region == key.region:
                seq = int(next_seq)
        return seq

    def materials(self, key: KeyRecord) -> list[MaterialRecord]:
        rows = self._execute(
            "SELECT seq, material_id, created, rotation_type FROM key_materials"
            " WHERE account_id = ? AND region = ? AND key_id = ? ORDER BY seq",
            (key.account_id, key.region, key.key_id),
        ).fetchall()
        return [MaterialRecord(*row) for row in rows]

    def key_owns_material(self, key: KeyRecord, material_id: str) -> bool:
        cache = self._read_cache()
        cache_key = ("owns", key.account_id, key.region, key.key_id, material_id)
        if cache is not None and cache.get(cache_key):
            return True
        row = self._execute(
            "SELECT 1 FROM key_materials"
            " WHERE material_id = ? AND account_id = ? AND region = ? AND key_id = ?",
            (material_id, key.account_id, key.region, key.key_id),
        ).fetchone()
        if cache is not None and row is not None:
            cache[cache_key] = True
        return row is not None

    def pending_destruction(self) -> list[tuple[str, str]]:
        return [
            (row[0], row[1])
            for row in self._execute("SELECT material_id, backend FROM pending_destruction")
        ]

    def forget_destruction(self, material_id: str) -> None:
        self._execute("DELETE FROM pending_destruction WHERE material_id = ?", (material_id,))

    # --- tags --------------------------------------------------------------------------
    def tags(self, key: KeyRecord) -> list[tuple[str, str]]:
        return [
            (row[0], row[1])
            for row in self._execute(
                "SELECT tag_key, tag_value FROM tags"
                " WHERE account_id = ? AND region = ? AND key_id = ? ORDER BY tag_key",
                (key.account_id, key.region, key.key_id),
            )
        ]

    def put_tags(self, key: KeyRecord, tags: Sequence[tuple[str, str]]) -> None:
        self._executemany(
            "INSERT INTO tags (account_id, region, key_id, tag_key, tag_value)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, region, key_id, tag_key)"
            " DO UPDATE SET tag_value = excluded.tag_value",
            [(key.account_id, key.region, key.key_id, k, v) for k, v in tags],
        )

    def delete_tags(self, key: KeyRecord, tag_keys: Sequence[str]) -> None:
        self._executemany(
            "DELETE FROM tags WHERE account_id = ? AND region = ? AND key_id = ? AND tag_key = ?",
            [(key.account_id, key.region, key.key_id, k) for k in tag_keys],
        )

    # --- whole-service views (seeding, export, reset, metrics) --------------------------
    def all_keys(self) -> list[KeyRecord]:
        """Every key of every account and region, in a stable order."""
        rows = self._execute(_KEY_SELECT + " ORDER BY k.account_id, k.region, k.key_id")
        return [_key_from_row(row) for row in rows.fetchall()]

    def count_keys_by_state(self) -> dict[str, int]:
        rows = self._execute("SELECT state, count(*) FROM keys GROUP BY state").fetchall()
        return {str(row[0]): int(row[1]) for row in rows}

    def material_owner(self, material_id: str) -> tuple[str, str, str] | None:
        """``(account, region, key id)`` of the key holding ``material_id``, if any."""
        row = self._execute(
            "SELECT account_id, region, key_id FROM key_materials WHERE material_id = ?",
            (material_id,),
        ).fetchone()
        return None if row is None else (row[0], row[1], row[2])
