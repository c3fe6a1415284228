"""Schema steps: what brings an older store up to :data:`SCHEMA_VERSION`, on either engine.

:meth:`kms_service.store.metadata.MetadataStore.initialise` runs schema.sql (translated for
PostgreSQL by :mod:`database.dialect`), then :func:`apply_schema_steps`, then records the
version (SQLite: ``PRAGMA user_version``; PostgreSQL: the ``schema_versions`` row), all in one
transaction. A store newer than the code refuses to start.
"""

from __future__ import annotations

from database import Database

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


def apply_schema_steps(database: Database) -> None:
    """Add the columns older tables lack and rebuild an older ``key_materials``; run after
    schema.sql inside the initialising transaction. Idempotent."""
    for table, column, declaration in _ADDED_COLUMNS:
        if column not in database.table_columns(table):
            database.run_script(f"ALTER TABLE {table} ADD COLUMN {column} {declaration}")
    if database.engine == "sqlite":
        # PostgreSQL stores began at schema 6: no older key_materials to rebuild there.
        _share_key_materials(database)


# >>> schema step "multi-Region keys" >>>
def _share_key_materials(connection: Database) -> None:
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
