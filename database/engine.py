"""The interface both engines implement (:class:`Database`), and what it returns."""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Protocol


class Rows(Protocol):
    """The result of one statement: sqlite3's cursor, or a fetched PostgreSQL result."""

    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...

    def __iter__(self) -> Iterator[Any]: ...


@dataclass(frozen=True)
class DatabaseHealth:
    """What ``/healthz`` reports of the database."""

    engine: str
    ok: bool
    detail: str


class Database(Protocol):
    """One database, used by every thread of a process.

    Statements use ``?`` placeholders. Outside :meth:`transaction` a reading statement runs
    on its own (PostgreSQL: a pooled connection in autocommit) and a writing one runs as a
    transaction of its own, so every change, however it is made, is one transaction and
    invalidates the caches of every host.

    Every method raises :class:`database.errors.DatabaseUnavailableError` when the database
    cannot be reached and :class:`database.errors.DatabaseError` for anything else it refuses.
    """

    #: "sqlite" or "postgresql".
    engine: str
    #: The file or the URL without its password, for messages.
    description: str

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Rows:
        """Run one statement in this thread's transaction, if any."""

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """Run one statement once per parameter row."""

    def transaction(self, *, invalidates_caches: bool = True) -> AbstractContextManager[None]:
        """One write transaction; writers of every process and host are serialised, so what a
        transaction reads stays true until it commits. Nested calls join the outer one. An
        exception rolls everything back. ``invalidates_caches``: the commit changes
        :meth:`cache_token` everywhere (off for data no one caches)."""

    def cache_token(self) -> Hashable | None:
        """A value that changes whenever any process or host may have committed a write that
        invalidates caches; None when nothing may be cached right now (a write in flight, a
        lost notification channel, inside a transaction). Cheap: no database round trip."""

    def run_script(self, script: str) -> None:
        """Run ``;``-separated DDL (written for SQLite, translated) in this thread's
        transaction."""

    def schema_version(self, component: str) -> int:
        """The schema version ``component`` last recorded here (0 if none)."""

    def set_schema_version(self, component: str, version: int) -> None:
        """Record ``component``'s schema version (inside a transaction)."""

    def table_columns(self, table: str) -> set[str]:
        """The column names of ``table`` (empty if it does not exist)."""

    def health(self) -> DatabaseHealth:
        """Whether the database answers now. Never raises."""

    def close(self) -> None:
        """Release this thread's connection (the pool and the listener stay)."""

    def dispose(self) -> None:
        """Release everything this process holds (before a fork, at exit)."""
