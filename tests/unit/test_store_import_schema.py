"""Schema version 3 (imported key material): a version-2 database is migrated in place."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kms_service.domain.key_states import KeyState
from kms_service.store import MetadataStore
from kms_service.store.metadata import DATABASE_FILE, SCHEMA_VERSION
from tests.support.records import key_record

KEY = key_record(
    key_id="6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f",
    origin="EXTERNAL",
    state=KeyState.PENDING_IMPORT,
    creation_date=1.0,
)


def test_version_2_database_gains_the_import_columns_and_tables(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.initialise()
    with store.write():
        store.insert_key(KEY)
    store.close()
    # Make it a version-2 database: no import tables, no import columns on keys.
    connection = sqlite3.connect(tmp_path / DATABASE_FILE)
    connection.executescript(
        "DROP TABLE import_wrapping_keys; DROP TABLE imported_materials;"
        "ALTER TABLE keys DROP COLUMN expiration_model; ALTER TABLE keys DROP COLUMN valid_to;"
        "PRAGMA user_version = 2;"
    )
    connection.close()

    store = MetadataStore(tmp_path)
    store.initialise()
    key = store.get_key(KEY.account_id, KEY.region, KEY.key_id)
    assert key is not None and key.expiration_model is None and key.valid_to is None
    with store.write():
        store.update_key(key, expiration_model="KEY_MATERIAL_EXPIRES", valid_to=2.0)
    again = store.get_key(KEY.account_id, KEY.region, KEY.key_id)
    assert again is not None and (again.expiration_model, again.valid_to) == (
        "KEY_MATERIAL_EXPIRES",
        2.0,
    )
    assert store.imported_materials(again) == []
    assert store.get_wrapping_key("0" * 64) is None
    store.close()
    connection = sqlite3.connect(tmp_path / DATABASE_FILE)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
    # Initialising a current database again changes nothing.
    store = MetadataStore(tmp_path)
    store.initialise()
    assert store.get_key(KEY.account_id, KEY.region, KEY.key_id) == again
    store.close()
