"""The relational databases mock-kms keeps its state in: SQLite (the embedded default) or
PostgreSQL (several hosts, one KMS), behind one small interface.

Statements are written once, with ``?`` placeholders and the SQL both engines share
(:mod:`database.dialect` translates the few differences), so the key store, the software
keystore and the S3 records have one implementation each. :func:`open_database` chooses the
engine from a path or a ``postgresql://`` URL.
"""

from __future__ import annotations

from pathlib import Path

from database.engine import Database, DatabaseHealth, Rows
from database.errors import (
    DatabaseError,
    DatabaseIntegrityError,
    DatabaseUnavailableError,
    DatabaseValueError,
)

__all__ = [
    "Database",
    "DatabaseError",
    "DatabaseHealth",
    "DatabaseIntegrityError",
    "DatabaseUnavailableError",
    "DatabaseValueError",
    "Rows",
    "is_database_url",
    "open_database",
    "redact_url",
]

_URL_PREFIXES = ("postgresql://", "postgres://")


def is_database_url(value: str) -> bool:
    """Whether ``value`` names a PostgreSQL database (rather than a file)."""
    return value.startswith(_URL_PREFIXES)


def redact_url(url: str) -> str:
    """``url`` without its password, fit for logs and error messages."""
    from database.postgres_engine import redact

    return redact(url)


def open_database(
    target: Path | str, *, generation: bool = False, synchronous: str = "NORMAL"
) -> Database:
    """The database at ``target``: a SQLite file path, or a ``postgresql://`` URL.

    ``generation``: keep the cross-process write counter that :meth:`Database.cache_token`
    reads (the key store caches rows against it; the keystore and S3 records do not cache).
    ``synchronous``: SQLite's setting (``FULL`` where a commit must survive power loss);
    PostgreSQL always commits durably. A PostgreSQL database is shared by every component
    of a process, so one pool and one notification listener serve them all. Opening is
    lazy: nothing connects until first use.
    """
    if isinstance(target, str) and is_database_url(target):
        from database.postgres_engine import shared_postgres_database

        return shared_postgres_database(target)
    from database.sqlite_engine import SqliteDatabase

    return SqliteDatabase(Path(target), generation=generation, synchronous=synchronous)
