"""The metadata store's schema migration from older databases."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from database import DatabaseError
from kms_service.store import MetadataStore
from kms_service.store.metadata import DATABASE_FILE, SCHEMA_VERSION


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
    with pytest.raises(DatabaseError):  # before: no settings table
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
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("SELECT key_id FROM keys").fetchall() == [("k",)]
    connection.close()


# >>> schema step "multi-Region keys" >>>
_VERSION_2_KEYS = (
    "CREATE TABLE keys (account_id TEXT NOT NULL, region TEXT NOT NULL, key_id TEXT NOT NULL,"
    " description TEXT NOT NULL DEFAULT '', key_usage TEXT NOT NULL, key_spec TEXT NOT NULL,"
    " origin TEXT NOT NULL, key_manager TEXT NOT NULL, state TEXT NOT NULL,"
    " creation_date REAL NOT NULL, deletion_date REAL, multi_region INTEGER NOT NULL DEFAULT 0,"
    " backend TEXT NOT NULL, rotation_enabled INTEGER NOT NULL DEFAULT 0,"
    " rotation_period_days INTEGER, next_rotation_date REAL,"
    " on_demand_rotations INTEGER NOT NULL DEFAULT 0, policy TEXT NOT NULL,"
    " PRIMARY KEY (account_id, region, key_id));"
    "CREATE TABLE key_materials (account_id TEXT NOT NULL, region TEXT NOT NULL,"
    " key_id TEXT NOT NULL, seq INTEGER NOT NULL, material_id TEXT NOT NULL UNIQUE,"
    " created REAL NOT NULL, rotation_type TEXT, PRIMARY KEY (account_id, region, key_id, seq),"
    " FOREIGN KEY (account_id, region, key_id) REFERENCES keys ON DELETE CASCADE);"
)


def _key_row(region: str) -> str:
    return (
        f"INSERT INTO keys VALUES ('111122223333', '{region}', 'mrk-{'a' * 32}', '',"
        " 'ENCRYPT_DECRYPT', 'SYMMETRIC_DEFAULT', 'AWS_KMS', 'CUSTOMER', 'Enabled', 1.0, NULL,"
        " 1, 'software', 0, NULL, NULL, 0, '{}');"
    )


def test_version_2_key_materials_become_shareable(tmp_path: Path) -> None:
    """The step rebuilds a UNIQUE material_id column, keeps the rows, and lets two keys (a
    primary and its replica) hold the same material id; running it again changes nothing."""
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.executescript(
        _VERSION_2_KEYS
        + _key_row("us-east-1")
        + _key_row("eu-west-1")
        + f"INSERT INTO key_materials VALUES ('111122223333', 'us-east-1', 'mrk-{'a' * 32}',"
        " 0, 'm0', 1.0, NULL);"
        "PRAGMA user_version = 2;"
    )
    replica_row = (
        f"INSERT INTO key_materials VALUES ('111122223333', 'eu-west-1', 'mrk-{'a' * 32}',"
        " 0, 'm0', 1.0, NULL)"
    )
    with pytest.raises(sqlite3.IntegrityError):
        connection.execute(replica_row)
    connection.close()
    for _ in range(2):  # the step is idempotent
        store = MetadataStore(tmp_path)
        store.initialise()
        store.close()
    connection = sqlite3.connect(path)
    connection.execute(replica_row)
    connection.commit()
    rows = connection.execute("SELECT region, material_id FROM key_materials ORDER BY region")
    assert rows.fetchall() == [("eu-west-1", "m0"), ("us-east-1", "m0")]
    indexes = {row[1] for row in connection.execute("PRAGMA index_list('key_materials')")}
    assert "key_materials_by_material" in indexes
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert connection.execute("SELECT count(*) FROM multi_region_members").fetchone() == (0,)
    connection.close()


# <<< schema step "multi-Region keys" <<<
def test_version_2_database_gains_custom_key_stores(tmp_path: Path) -> None:
    """Schema version 6 (docs/custom-key-stores.md): the key stores table appears, nothing
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
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    connection.close()
