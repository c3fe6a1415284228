"""The rows of the source copied into the target database in one transaction.

The transaction holds the write lock every mock-kms host takes, so no host writes between the
check that the target is empty and the commit; any failure rolls everything back and leaves
the target as it was. Columns are those the source and the target share (both are at the
current schema, so that is every column); a source column the target lacks stops the copy
rather than dropping data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import islice

from database import Database, DatabaseError
from kms_service.store_migration.plan import Component
from kms_service.store_migration.snapshot import MigrationError

#: Rows read from SQLite and sent to PostgreSQL at a time (bounded memory for big stores).
_BATCH = 500


@dataclass(frozen=True)
class TableCount:
    """How many rows of one table were copied."""

    component: str
    table: str
    rows: int


def occupied_tables(target: Database, components: Sequence[Component]) -> list[TableCount]:
    """The tables of ``components`` that already hold rows in ``target`` (tables it does not
    have yet hold none)."""
    occupied = []
    for component in components:
        for table in component.tables:
            if not target.table_columns(table):
                continue
            count = int(target.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
            if count:
                occupied.append(TableCount(component.name, table, count))
    return occupied


def refuse_occupied(target: Database, components: Sequence[Component]) -> None:
    """Raise :class:`MigrationError` when ``target`` already holds mock-kms state."""
    occupied = occupied_tables(target, components)
    if occupied:
        found = ", ".join(f"{entry.table} ({entry.rows})" for entry in occupied[:4])
        more = f" and {len(occupied) - 4} more table(s)" if len(occupied) > 4 else ""
        raise MigrationError(
            f"{target.description} already holds mock-kms state ({found}{more}):"
            " migrate-store only copies into a database no host has written to yet,"
            " so that nothing there is overwritten or mixed; use a new database"
        )


def _columns(source: Database, target: Database, component: Component, table: str) -> list[str]:
    source_columns = source.table_columns(table)
    target_columns = target.table_columns(table)
    if not target_columns:
        raise MigrationError(f"{target.description} has no {table} table after initialising")
    missing = source_columns - target_columns
    if missing:
        raise MigrationError(
            f"the {component.name} table {table} has column(s) {', '.join(sorted(missing))}"
            f" that {target.description} lacks"
        )
    return sorted(source_columns)


def copy_rows(
    sources: Mapping[str, Database], target: Database, components: Sequence[Component]
) -> list[TableCount]:
    """Copy every table of ``components`` from ``sources`` (by component name) into
    ``target`` in one transaction, after checking the target holds none of them; return the
    counts. Raises :class:`MigrationError`; on any error nothing is committed."""
    counts: list[TableCount] = []
    try:
        with target.transaction():
            refuse_occupied(target, components)
            for component in components:
                source = sources[component.name]
                for table in component.tables:
                    counts.append(_copy_table(source, target, component, table))
    except DatabaseError as exc:
        raise MigrationError(f"nothing was copied: {exc}") from None
    return counts


def _copy_table(source: Database, target: Database, component: Component, table: str) -> TableCount:
    columns = _columns(source, target, component, table)
    names = ", ".join(columns)
    insert = f"INSERT INTO {table} ({names}) VALUES ({', '.join('?' for _ in columns)})"  # noqa: S608
    rows = iter(source.execute(f"SELECT {names} FROM {table}"))  # noqa: S608 - constant names
    copied = 0
    while batch := list(islice(rows, _BATCH)):
        target.executemany(insert, [tuple(row) for row in batch])
        copied += len(batch)
    landed = int(target.execute(f"SELECT count(*) FROM {table}").fetchone()[0])  # noqa: S608
    if landed != copied:
        raise MigrationError(
            f"{table}: {copied} row(s) read but {landed} in the target; nothing was copied"
        )
    return TableCount(component.name, table, copied)
