"""What the database engines raise, whichever engine is underneath.

Callers catch these, never ``sqlite3`` or ``psycopg`` exceptions: the store, the software
keystore and the S3 records run unchanged on either engine.
"""

from __future__ import annotations


class DatabaseError(Exception):
    """The database refused a statement or cannot be used."""


class DatabaseUnavailableError(DatabaseError):
    """The database cannot be reached right now (connection lost, server restarting, every
    pooled connection busy, SQLite's write lock held too long). Retryable: a request that
    meets it answers a 5xx error that AWS SDKs retry, and nothing it began is committed."""


class DatabaseValueError(DatabaseError):
    """A value the engine cannot keep: PostgreSQL's TEXT cannot hold the NUL character, which
    SQLite keeps. The request that carried it is refused (a ValidationException), not failed."""


class DatabaseIntegrityError(DatabaseError):
    """A statement broke a constraint (a duplicate primary key, say)."""
