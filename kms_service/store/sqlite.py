"""SQLite store: the single source of truth for every gunicorn worker.

Each thread of each worker has its own connection (WAL mode, so readers never block the
writer). Every state change runs inside :meth:`MetadataStore.write`, one ``BEGIN IMMEDIATE``
transaction: concurrent writers queue on SQLite's lock and re-read what they change, so no
update is lost and a crash leaves either the old state or the new one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from typing import Any

from kms_service.domain.key_states import KeyState
from kms_service.store.generation import WriteGeneration
from kms_service.store.grants import GrantTables

DATABASE_FILE = "mock-kms.sqlite3"
#: 2 added ``service_settings`` (the movable clock, fault injection); 3 added imported key
#: material (``import_wrapping_keys``, ``imported_materials`` and two ``keys`` columns); 4
#: (step "multi-Region keys") added ``multi_region_members`` and made
#: ``key_materials.material_id`` non-unique (:func:`_share_key_materials`); 5 added
#: ``grants`` (access control); 6 added ``custom_key_stores`` (docs/custom-key-stores.md).
#: schema.sql only uses ``CREATE ... IF NOT EXISTS``, :data:`_ADDED_COLUMNS` adds the columns
#: older ``keys`` tables lack and :func:`_share_key_materials` rebuilds an older
#: ``key_materials``, so initialising migrates any older database in place.
SCHEMA_VERSION = 6
#: Columns added to existing tables after version 2: ``(table, column, declaration)``.
_ADDED_COLUMNS = (
    ("keys", "expiration_model", "TEXT"),
    ("keys", "valid_to", "REAL"),
)
#: Rows one thread may keep between database changes (see ``MetadataStore._read_cache``).
_READ_CACHE_LIMIT = 4096
#: Beside the database: the write counters every process checks its cached rows against.
GENERATION_SUFFIX = "-generation"
#: How often a thread also asks SQLite whether the database changed, which catches programs
#: other than mock-kms writing to it (they do not count their writes in the generation file).
_FOREIGN_WRITE_CHECK_S = 1.0
_SECONDS_PER_DAY = 86400.0


class StoreError(Exception):
    """The database cannot be opened or used."""


@dataclass(frozen=True)
class KeyRecord:
    """One row of ``keys`` plus the id of its current key material."""

    account_id: str
    region: str
    key_id: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str
    state: KeyState
    creation_date: float
    deletion_date: float | None
    multi_region: bool
    backend: str
    rotation_enabled: bool
    rotation_period_days: int | None
    next_rotation_date: float | None
    on_demand_rotations: int
    policy: str
    #: EXTERNAL keys: the current material's ExpirationModel, and the earliest ValidTo of the
    #: key's imported material (when it goes back to PendingImport).
    expiration_model: str | None = None
    valid_to: float | None = None
    current_material_id: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.key_id}"


@dataclass(frozen=True)
class MaterialRecord:
    """One key-material version of a key; ``seq`` 0 is the original material."""

    seq: int
    material_id: str
    created: float
    rotation_type: str | None


@dataclass(frozen=True)
class WrappingKeyRecord:
    """A wrapping key pair handed out by GetParametersForImport (the pair is in ``backend``)."""

    wrapping_key_id: str
    account_id: str
    region: str
    key_id: str
    backend: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    created: float
    valid_to: float


@dataclass(frozen=True)
class ImportedMaterialRecord:
    """Import details of one key-material version of an EXTERNAL key."""

    material_id: str
    account_id: str
    region: str
    key_id: str
    #: ``IMPORTED`` or ``PENDING_IMPORT`` (deleted or expired; re-import the same material).
    import_state: str
    #: Imported as NEW_KEY_MATERIAL and not yet made current by RotateKeyOnDemand.
    pending_rotation: bool
    expiration_model: str
    valid_to: float | None
    description: str
    check_value: bytes = field(repr=False)
    imported: float


@dataclass(frozen=True)
class MultiRegionMember:
    """One key of a multi-Region key: its region, ``PRIMARY`` or ``REPLICA``, and (for a
    primary in PendingReplicaDeletion) the deletion window that starts with its last replica's
    deletion."""

    region: str
    role: str
    pending_window_days: int | None = None


#: The key columns every key of a multi-Region key shares (AWS synchronises the automatic
#: rotation status; docs/multi-region-keys.md): an update of one is an update of all.
MULTI_REGION_SHARED_COLUMNS = frozenset(
    {"rotation_enabled", "rotation_period_days", "next_rotation_date", "on_demand_rotations"}
)


@dataclass(frozen=True)
class AliasRecord:
    account_id: str
    region: str
    alias_name: str
    target_key_id: str
    creation_date: float
    last_updated_date: float

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:{self.alias_name}"


# --- custom key stores (schema version 6; docs/custom-key-stores.md) -----------------------
@dataclass(frozen=True)
class KeyStoreRecord:
    """One row of ``custom_key_stores``. The password is only ever held wrapped."""

    store_id: str
    account_id: str
    region: str
    name: str
    store_type: str
    cluster_id: str
    trust_anchor: str
    password_nonce: bytes | None
    password_wrapped: bytes | None
    connection_state: str
    connection_error: str | None
    connection_epoch: int
    creation_date: float


_KEY_STORE_COLUMNS = [f.name for f in fields(KeyStoreRecord)]
_KEY_STORE_SELECT = f"SELECT {', '.join(_KEY_STORE_COLUMNS)} FROM custom_key_stores"  # noqa: S608
# --- end of custom key stores ------------------------------------------------------------------


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


# >>> schema step "multi-Region keys" >>>
def _share_key_materials(connection: sqlite3.Connection) -> None:
    """Schema step "multi-Region keys": rebuild a ``key_materials`` table whose
    ``material_id`` is UNIQUE (databases before schema 3) without that constraint, so the keys
    of a multi-Region key can share rows. Idempotent: it looks at the table, not the version
    number, so it runs once whatever the steps around it are numbered."""
    unique_on_material = any(
        row[2]
        and row[3] == "u"  # (seq, name, unique, origin, partial)
        and [column[2] for column in connection.execute(f"PRAGMA index_info('{row[1]}')")]
        == ["material_id"]
        for row in connection.execute("PRAGMA index_list('key_materials')").fetchall()
    )
    if not unique_on_material:
        return
    connection.execute(
        "CREATE TABLE key_materials_shared ("
        " account_id TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL,"
        " seq INTEGER NOT NULL, material_id TEXT NOT NULL, created REAL NOT NULL,"
        " rotation_type TEXT, PRIMARY KEY (account_id, region, key_id, seq),"
        " FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE)"
    )
    connection.execute(
        "INSERT INTO key_materials_shared SELECT account_id, region, key_id, seq, material_id,"
        " created, rotation_type FROM key_materials"
    )
    connection.execute("DROP TABLE key_materials")
    connection.execute("ALTER TABLE key_materials_shared RENAME TO key_materials")
    connection.execute(
        "CREATE INDEX IF NOT EXISTS key_materials_by_material ON key_materials (material_id)"
    )


# <<< schema step "multi-Region keys" <<<


class MetadataStore(GrantTables):
    """Keys, key-material versions, aliases and tags, scoped by account and region."""

    def __init__(self, data_dir: Path) -> None:
        self._path = data_dir / DATABASE_FILE
        self._local = threading.local()
        self._generation: WriteGeneration | None = None
        self._generation_lock = threading.Lock()

    @property
    def path(self) -> Path:
        return self._path

    def initialise(self) -> None:
        """Create the database and its schema if needed. Raises :class:`StoreError`."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        schema = resources.files("kms_service.store").joinpath("schema.sql").read_text()
        try:
            connection = self._connection()
            connection.execute("PRAGMA journal_mode=WAL")
            with self.write():
                version = connection.execute("PRAGMA user_version").fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self._path} was written by a newer mock-kms (schema {version})"
                    )
                for statement in schema.split(";"):
                    if statement.strip():
                        connection.execute(statement)
                for table, column, declaration in _ADDED_COLUMNS:
                    present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
                    if column not in present:
                        connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
                _share_key_materials(connection)
                connection.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open database {self._path}: {exc}") from None

    def _connection(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            connection = sqlite3.connect(
                self._path, timeout=30, isolation_level=None, check_same_thread=True
            )
            connection.execute("PRAGMA foreign_keys=ON")
            connection.execute("PRAGMA synchronous=NORMAL")
            connection.execute("PRAGMA busy_timeout=30000")
            self._local.connection = connection
            self._local.depth = 0
            # A new connection starts new data_version/total_changes counters: nothing cached
            # under the old connection's token may be trusted.
            self._local.cache = {}
            self._local.cache_token = None
            self._local.data_version = None
            self._local.foreign_check_due = 0.0
        return connection

    def _writes(self) -> WriteGeneration:
        """The shared write counters, opened on first use. Raises :class:`StoreError`."""
        generation = self._generation
        if generation is None:
            with self._generation_lock:
                generation = self._generation
                if generation is None:
                    path = self._path.with_name(self._path.name + GENERATION_SUFFIX)
                    try:
                        generation = WriteGeneration(path)
                    except OSError as exc:
                        raise StoreError(f"cannot open {path}: {exc.strerror}") from None
                    self._generation = generation
        return generation

    def _stable_generation(self) -> int | None:
        """The shared write count when no write is in flight; None otherwise, and when the
        counter file cannot be opened (a reader without write access to the data directory,
        such as ``mock-kms export`` run by another user), which only turns caching off."""
        try:
            return self._writes().stable()
        except StoreError:
            return None

    def _read_cache(self) -> dict[tuple[str, ...], Any] | None:
        """This thread's cache of rows read outside transactions, emptied whenever the
        database may have changed since they were read; None while any process is writing,
        and inside a transaction, whose reads must see its own uncommitted writes and must
        not outlive a rollback.

        Checking costs two reads of shared memory (:mod:`kms_service.store.generation`,
        which every write through :meth:`write` updates, in any process), this connection's
        ``total_changes`` (its own writes outside :meth:`write`) and, once a second, SQLite's
        ``PRAGMA data_version`` for writers other than mock-kms. So a key disabled through one
        worker is refused by every worker on its next request.
        """
        connection = self._connection()
        if connection.in_transaction:
            return None
        generation = self._stable_generation()
        if generation is None:
            return None
        local = self._local
        now = time.monotonic()
        if now >= local.foreign_check_due:
            local.data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            local.foreign_check_due = now + _FOREIGN_WRITE_CHECK_S
        token = (generation, local.data_version, connection.total_changes)
        if token != local.cache_token or len(local.cache) >= _READ_CACHE_LIMIT:
            local.cache = {}
            local.cache_token = token
        cache: dict[tuple[str, ...], Any] = local.cache
        return cache

    def close(self) -> None:
        """Close this thread's connection."""
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    @contextmanager
    def write(self) -> Iterator[None]:
        """One ``BEGIN IMMEDIATE`` transaction; nested calls join the outer one."""
        connection = self._connection()
        if self._local.depth:
            self._local.depth += 1
            try:
                yield
            finally:
                self._local.depth -= 1
            return
        writes = self._writes()
        connection.execute("BEGIN IMMEDIATE")
        # Counted while SQLite's write lock is held and before anything can be committed, so
        # no process keeps using rows cached before this write (see _read_cache).
        number = writes.begin()
        self._local.depth = 1
        try:
            try:
                yield
            except BaseException:
                self._local.depth = 0
                connection.execute("ROLLBACK")
                raise
            self._local.depth = 0
            connection.execute("COMMIT")
        finally:
            writes.complete(number)

    def _execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._connection().execute(sql, params)

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
        self._connection().executemany(
            "INSERT OR IGNORE INTO pending_destruction (material_id, backend) VALUES (?, ?)",
            [(material_id, key.backend) for material_id in unused],
        )
        if key.multi_region:
            self._after_member_deleted(key)
        return unused

    # --- multi-Region keys (schema step "multi-Region keys") ---------------------------
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

    # --- aliases -----------------------------------------------------------------------
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
        self._connection().executemany(
            "INSERT INTO tags (account_id, region, key_id, tag_key, tag_value)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (account_id, region, key_id, tag_key)"
            " DO UPDATE SET tag_value = excluded.tag_value",
            [(key.account_id, key.region, key.key_id, k, v) for k, v in tags],
        )

    def delete_tags(self, key: KeyRecord, tag_keys: Sequence[str]) -> None:
        self._connection().executemany(
            "DELETE FROM tags WHERE account_id = ? AND region = ? AND key_id = ? AND tag_key = ?",
            [(key.account_id, key.region, key.key_id, k) for k in tag_keys],
        )

    # --- whole-service views (seeding, export, reset, metrics) --------------------------
    def all_keys(self) -> list[KeyRecord]:
        """Every key of every account and region, in a stable order."""
        rows = self._execute(_KEY_SELECT + " ORDER BY k.account_id, k.region, k.key_id")
        return [_key_from_row(row) for row in rows.fetchall()]

    def all_aliases(self) -> list[AliasRecord]:
        """Every alias of every account and region, in a stable order."""
        rows = self._execute(
            "SELECT account_id, region, alias_name, target_key_id, creation_date,"
            " last_updated_date FROM aliases ORDER BY account_id, region, alias_name"
        )
        return [AliasRecord(*row) for row in rows.fetchall()]

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

    # --- service settings (shared by every worker: clock offset, faults) ---------------
    def service_settings(self) -> dict[str, str]:
        rows = self._execute("SELECT name, value FROM service_settings").fetchall()
        return {str(row[0]): str(row[1]) for row in rows}

    def set_service_setting(self, name: str, value: str | None) -> None:
        """Set ``name`` to ``value``; None removes it."""
        if value is None:
            self._execute("DELETE FROM service_settings WHERE name = ?", (name,))
            return
        self._execute(
            "INSERT INTO service_settings (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )

    # --- imported key material (GetParametersForImport, ImportKeyMaterial) -------------
    def insert_wrapping_key(self, record: WrappingKeyRecord) -> None:
        self._execute(
            "INSERT INTO import_wrapping_keys (wrapping_key_id, account_id, region, key_id,"
            " backend, wrapping_algorithm, wrapping_key_spec, created, valid_to)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.wrapping_key_id,
                record.account_id,
                record.region,
                record.key_id,
                record.backend,
                record.wrapping_algorithm,
                record.wrapping_key_spec,
                record.created,
                record.valid_to,
            ),
        )

    def get_wrapping_key(self, wrapping_key_id: str) -> WrappingKeyRecord | None:
        row = self._execute(
            "SELECT wrapping_key_id, account_id, region, key_id, backend, wrapping_algorithm,"
            " wrapping_key_spec, created, valid_to FROM import_wrapping_keys"
            " WHERE wrapping_key_id = ?",
            (wrapping_key_id,),
        ).fetchone()
        return None if row is None else WrappingKeyRecord(*row)

    def expired_wrapping_keys(self, now: float) -> list[WrappingKeyRecord]:
        rows = self._execute(
            "SELECT wrapping_key_id, account_id, region, key_id, backend, wrapping_algorithm,"
            " wrapping_key_spec, created, valid_to FROM import_wrapping_keys"
            " WHERE valid_to <= ?",
            (now,),
        ).fetchall()
        return [WrappingKeyRecord(*row) for row in rows]

    def delete_wrapping_key(self, wrapping_key_id: str) -> None:
        self._execute(
            "DELETE FROM import_wrapping_keys WHERE wrapping_key_id = ?", (wrapping_key_id,)
        )

    def imported_materials(self, key: KeyRecord) -> list[ImportedMaterialRecord]:
        """The key's imported material, oldest import first."""
        rows = self._execute(
            "SELECT material_id, account_id, region, key_id, import_state, pending_rotation,"
            " expiration_model, valid_to, description, check_value, imported"
            " FROM imported_materials WHERE account_id = ? AND region = ? AND key_id = ?"
            " ORDER BY imported, material_id",
            (key.account_id, key.region, key.key_id),
        ).fetchall()
        return [
            ImportedMaterialRecord(
                material_id=row[0],
                account_id=row[1],
                region=row[2],
                key_id=row[3],
                import_state=row[4],
                pending_rotation=bool(row[5]),
                expiration_model=row[6],
                valid_to=row[7],
                description=row[8],
                check_value=bytes(row[9]),
                imported=row[10],
            )
            for row in rows
        ]

    def put_imported_material(self, record: ImportedMaterialRecord) -> None:
        """Insert or replace the import details of one material."""
        self._execute(
            "INSERT INTO imported_materials (material_id, account_id, region, key_id,"
            " import_state, pending_rotation, expiration_model, valid_to, description,"
            " check_value, imported) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (material_id) DO UPDATE SET import_state = excluded.import_state,"
            " pending_rotation = excluded.pending_rotation,"
            " expiration_model = excluded.expiration_model, valid_to = excluded.valid_to,"
            " description = excluded.description, imported = excluded.imported",
            (
                record.material_id,
                record.account_id,
                record.region,
                record.key_id,
                record.import_state,
                int(record.pending_rotation),
                record.expiration_model,
                record.valid_to,
                record.description,
                record.check_value,
                record.imported,
            ),
        )

    # --- custom key stores (schema version 6; docs/custom-key-stores.md) -------------------
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

    # --- end of custom key stores ------------------------------------------------------------
