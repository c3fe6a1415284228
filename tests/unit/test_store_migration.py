"""The metadata store's schema migration from older databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from kms_service.store import MetadataStore
from kms_service.store.sqlite import DATABASE_FILE, SCHEMA_VERSION


def test_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE keys (account_id TEXT, region TEXT, key_id TEXT);"
        "INSERT INTO keys VALUES ('111122223333', 'us-east-1', 'k');"
        "PRAGMA user_version = 1;"
    )
    connection.close()
    store = MetadataStore(tmp_path)
    with pytest.raises(sqlite3.Error):  # before: no settings table
        store.service_settings()
    store.close()
    store = MetadataStore(tmp_path)
    store.initialise()
    assert store.service_settings() == {}
    with store.write():
        store.set_service_setting("x", "1")
    assert store.service_settings() == {"x": "1"}
    store.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert connection.execute("SELECT key_id FROM keys").fetchall() == [("k",)]
    connection.close()


def test_version_2_database_gains_custom_key_stores(tmp_path: Path) -> None:
    """Schema version 3 (docs/custom-key-stores.md): the key stores table appears, nothing
    else changes."""
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE keys (account_id TEXT, region TEXT, key_id TEXT, backend TEXT);"
        "INSERT INTO keys VALUES ('111122223333', 'us-east-1', 'k', 'pkcs11');"
        "PRAGMA user_version = 2;"
    )
    connection.close()
    store = MetadataStore(tmp_path)
    store.initialise()
    assert store.key_stores("111122223333", "us-east-1") == []
    assert store.count_keys_on_backend("pkcs11") == 1
    store.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == 3
    connection.close()
