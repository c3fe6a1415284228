"""``migrate-store``'s table plan against the schemas the real code creates: a table added to
any of them without being added to the plan would be left behind by a migration."""

from __future__ import annotations

import os
from pathlib import Path

from backends.software import KEYSTORE_FILE, SoftwareBackend
from database import open_database
from kms_service.store import MetadataStore
from kms_service.store.metadata import DATABASE_FILE
from kms_service.store_migration.plan import KEYSTORE, KMS, S3, Component, unknown_tables
from kms_service.store_migration.snapshot import sqlite_tables
from s3_service.store import DATABASE_FILE as S3_DATABASE_FILE
from s3_service.store import S3Store


def _tables(path: Path) -> set[str]:
    database = open_database(path)
    try:
        return sqlite_tables(database)
    finally:
        database.close()


def _covered(component: Component, tables: set[str]) -> None:
    assert unknown_tables(component, tables) == []
    assert set(component.tables) <= tables, "the plan names a table the schema lacks"


def test_plan_covers_every_table_of_every_schema(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.initialise()
    store.close()
    SoftwareBackend(tmp_path, os.urandom(32)).close()
    s3 = S3Store(tmp_path / "s3")
    s3.initialise()
    s3.close()
    _covered(KMS, _tables(tmp_path / DATABASE_FILE))
    _covered(KEYSTORE, _tables(tmp_path / KEYSTORE_FILE))
    _covered(S3, _tables(tmp_path / "s3" / S3_DATABASE_FILE))


def test_unknown_tables_are_named() -> None:
    assert unknown_tables(KMS, {"keys", "future_table", "another"}) == ["another", "future_table"]
    assert unknown_tables(KEYSTORE, {"material", "root_key_check"}) == []
