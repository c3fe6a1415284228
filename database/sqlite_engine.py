"""The SQLite engine: one file, one connection per thread of each process (WAL mode, so
readers never block the writer), writers serialised by ``BEGIN IMMEDIATE``.

Caches are checked against :mod:`database.sqlite_generation` (two reads of shared memory)
rather than a statement per request; see :meth:`SqliteDatabase.cache_token`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from database.engine import DatabaseHealth
from database.errors import DatabaseError, DatabaseIntegrityError, DatabaseUnavailableError
from database.sqlite_generation import WriteGeneration

#: Beside the database: the write counters every process checks its cached rows against.
GENERATION_SUFFIX = "-generation"
#: How often a thread also asks SQLite whether the database changed, which catches programs
#: other than mock-kms writing to it (they do not count their writes in the generation file).
_FOREIGN_WRITE_CHECK_S = 1.0
#: What SQLite says when the database is busy or out of reach rather than the statement wrong.
_UNAVAILABLE_SIGNS = ("locked", "busy", "unable to open", "disk I/O", "readonly", "full")


def translate_error(exc: sqlite3.Error, description: str) -> DatabaseError:
    """The engine-neutral form of ``exc``."""
    if isinstance(exc, sqlite3.IntegrityError):
        return DatabaseIntegrityError(f"{description}: {exc}")
    if isinstance(exc, sqlite3.OperationalError) and any(
        sign in str(exc) for sign in _UNAVAILABLE_SIGNS
    ):
        # The request may succeed later; nothing of it was committed.
        return DatabaseUnavailableError(f"{description}: {exc}")
    return DatabaseError(f"{description}: {exc}")


class SqliteDatabase:
    """A SQLite database file; see :class:`database.engine.Database`."""

    engine = "sqlite"

    def __init__(self, path: Path, *, generation: bool, synchronous: str = "NORMAL") -> None:
        self.path = path
        self.description = str(path)
        self._local = threading.local()
        self._track_writes = generation
        self._synchronous = synchronous
        self._generation: WriteGeneration | None = None
        self._generation_lock = threading.Lock()

    # --- connections ---------------------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """This thread's connection, opened on first use. Raises DatabaseUnavailableError."""
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                connection = sqlite3.connect(
                    self.path, timeout=30, isolation_level=None, check_same_thread=True
                )
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute(f"PRAGMA synchronous={self._synchronous}")
                connection.execute("PRAGMA busy_timeout=30000")
            except (sqlite3.Error, OSError) as exc:
                raise DatabaseUnavailableError(
                    f"cannot open database {self.description}: {exc}"
                ) from None
            self._local.connection = connection
            self._local.depth = 0
            # A new connection starts new data_version/total_changes counters.
            self._local.data_version = None
            self._local.foreign_check_due = 0.0
        return connection

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None

    def dispose(self) -> None:
        self.close()

    # --- statements ----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        try:
            return self.connection().execute(sql, params)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.description) from None

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        try:
            self.connection().executemany(sql, rows)
        except sqlite3.Error as exc:
            raise translate_error(exc, self.description) from None

    def run_script(self, script: str) -> None:
        from database.dialect import split_script

        for statement in split_script(script):
            self.execute(statement)

    # --- transactions ----------------------------------------------------------------------
    @contextmanager
    def transaction(self, *, invalidates_caches: bool = True) -> Iterator[None]:
        connection = self.connection()
        local = self._local
        if local.depth:
            local.depth += 1
            try:
                yield
            finally:
                local.depth -= 1
            return
        writes = self._writes() if self._track_writes else None
        try:
            connection.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise translate_error(exc, self.description) from None
        # Counted while SQLite's write lock is held and before anything can be committed, so
        # no process keeps using rows cached before this write (see cache_token).
        number = writes.begin() if writes is not None else 0
        local.depth = 1
        try:
            try:
                yield
            except BaseException:
                local.depth = 0
                connection.execute("ROLLBACK")
                raise
            local.depth = 0
            try:
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                connection.execute("ROLLBACK")
                raise translate_error(exc, self.description) from None
        finally:
            if writes is not None:
                writes.complete(number)

    # --- caches ----------------------------------------------------------------------------
    def _writes(self) -> WriteGeneration:
        """The shared write counters, opened on first use. Raises DatabaseUnavailableError."""
        generation = self._generation
        if generation is None:
            with self._generation_lock:
                generation = self._generation
                if generation is None:
                    path = self.path.with_name(self.path.name + GENERATION_SUFFIX)
                    try:
                        generation = WriteGeneration(path)
                    except OSError as exc:
                        raise DatabaseUnavailableError(
                            f"cannot open {path}: {exc.strerror}"
                        ) from None
                    self._generation = generation
        return generation

    def cache_token(self) -> Hashable | None:
        """None while any process is writing, inside a transaction, and without a generation
        file; otherwise the shared write count (two reads of shared memory, which every write
        through :meth:`transaction` updates, in any process), this connection's
        ``total_changes`` (its own writes outside :meth:`transaction`) and, once a second,
        SQLite's ``PRAGMA data_version`` for writers other than mock-kms."""
        if not self._track_writes:
            return None
        connection = self.connection()
        if connection.in_transaction:
            return None
        try:
            generation = self._writes().stable()
        except DatabaseUnavailableError:
            # A reader without write access to the data directory (``mock-kms export`` run
            # by another user): caching off, still correct.
            return None
        if generation is None:
            return None
        local = self._local
        now = time.monotonic()
        if now >= local.foreign_check_due:
            local.data_version = connection.execute("PRAGMA data_version").fetchone()[0]
            local.foreign_check_due = now + _FOREIGN_WRITE_CHECK_S
        return (generation, local.data_version, connection.total_changes)

    # --- schema ----------------------------------------------------------------------------
    def schema_version(self, component: str) -> int:
        """SQLite keeps one component per file: its ``PRAGMA user_version``."""
        return int(self.execute("PRAGMA user_version").fetchone()[0])

    def set_schema_version(self, component: str, version: int) -> None:
        self.execute(f"PRAGMA user_version = {int(version)}")

    def table_columns(self, table: str) -> set[str]:
        return {row[1] for row in self.execute(f"PRAGMA table_info({table})")}

    def health(self) -> DatabaseHealth:
        try:
            self.execute("SELECT 1").fetchone()
        except DatabaseError as exc:
            return DatabaseHealth(self.engine, False, str(exc))
        return DatabaseHealth(self.engine, True, self.description)
