"""The differences between SQLite's SQL and PostgreSQL's that mock-kms's statements meet.

Statements are written for SQLite with ``?`` placeholders; :func:`to_postgres` rewrites one
for psycopg, :func:`ddl_to_postgres` rewrites schema text. Both are memoised: the same few
hundred statements are translated once per process.
"""

from __future__ import annotations

import re
from functools import lru_cache

_INSERT_OR_IGNORE = re.compile(r"^\s*INSERT\s+OR\s+IGNORE\s+INTO", re.IGNORECASE)
_TYPE_WORDS = {
    # SQLite's REAL is a double; PostgreSQL's is 4 bytes (timestamps would lose seconds).
    "REAL": "DOUBLE PRECISION",
    "BLOB": "BYTEA",
    # Counters and sizes may exceed 2**31.
    "INTEGER": "BIGINT",
}
_TYPE_PATTERN = re.compile(r"\b(REAL|BLOB|INTEGER)\b")


@lru_cache(maxsize=2048)
def to_postgres(sql: str) -> str:
    """``sql`` with psycopg's ``%s`` placeholders, a literal ``%`` doubled, and
    ``INSERT OR IGNORE`` as ``INSERT ... ON CONFLICT DO NOTHING``.

    The statements never hold a ``?`` inside a string literal (values are always parameters).
    """
    translated = sql.replace("%", "%%").replace("?", "%s")
    if _INSERT_OR_IGNORE.match(translated):
        translated = _INSERT_OR_IGNORE.sub("INSERT INTO", translated, count=1)
        translated += " ON CONFLICT DO NOTHING"
    return translated


def is_read(sql: str) -> bool:
    """Whether ``sql`` only reads (so it may run outside a transaction)."""
    return sql.lstrip()[:6].upper().startswith(("SELECT", "WITH", "VALUES"))


def ddl_to_postgres(statement: str) -> str:
    """One schema statement written for SQLite, for PostgreSQL: the column types above, and
    no ``WITHOUT ROWID`` (a SQLite storage choice)."""
    statement = re.sub(r"\)\s*WITHOUT\s+ROWID", ")", statement, flags=re.IGNORECASE)
    return _TYPE_PATTERN.sub(lambda match: _TYPE_WORDS[match.group(1)], statement)


def split_script(script: str) -> list[str]:
    """The statements of a ``;``-separated script, comments and blanks dropped (a statement
    never holds a semicolon in a string or a comment)."""
    statements = []
    for chunk in script.split(";"):
        lines = [line for line in chunk.splitlines() if not line.strip().startswith("--")]
        text = "\n".join(lines).strip()
        if text:
            statements.append(text)
    return statements
