"""Consistent copies of a data directory's SQLite files, brought to the current schema.

``migrate-store`` never reads the source files directly and never changes them: each is
copied with SQLite's backup API (a consistent state even if a server still has the file open
in WAL mode; the source is opened read-only) into a private temporary directory, and the
copies are then initialised by the same code that opens them at serve time
(:meth:`MetadataStore.initialise`, the :class:`SoftwareBackend` constructor,
:meth:`S3Store.initialise`). So an older data directory is migrated by the very schema steps
``mock-kms serve`` would apply, and the source stays as it was: a way back.
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from backends.base import BackendError
from backends.software import KEYSTORE_FILE, SoftwareBackend
from database import Database, DatabaseError, open_database
from kms_service.store import MetadataStore, StoreError
from kms_service.store.metadata import DATABASE_FILE, SCHEMA_COMPONENT, SCHEMA_VERSION
from kms_service.store_migration.plan import KEYSTORE, KMS, S3, Component, unknown_tables
from s3_service.store import DATABASE_FILE as S3_DATABASE_FILE
from s3_service.store import S3Store


class MigrationError(Exception):
    """The migration cannot go ahead (or failed and changed nothing); the message is one
    actionable line without secrets."""


def copy_sqlite(source: Path, destination: Path) -> None:
    """Copy the SQLite database ``source`` to the new file ``destination`` with the backup
    API, opening ``source`` read-only. Raises :class:`MigrationError`."""
    try:
        reader = sqlite3.connect(f"{source.resolve().as_uri()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot open {source}: {exc}") from None
    try:
        writer = sqlite3.connect(destination)
        try:
            reader.backup(writer)
        finally:
            writer.close()
    except sqlite3.Error as exc:
        raise MigrationError(f"cannot read {source}: {exc}") from None
    finally:
        reader.close()


def sqlite_tables(database: Database) -> set[str]:
    """The tables of a SQLite database, SQLite's own left out."""
    rows = database.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )
    return {str(row[0]) for row in rows}


@dataclass
class SourceSnapshot:
    """The copies of one data directory's databases, at the current schema.

    Use as a context manager: the temporary directory (wrapped key material only, mode
    0700) is removed on exit.
    """

    data_dir: Path
    s3_dir: Path
    root_key: bytes
    #: The key store's schema version in the source, before the copy was brought up to date.
    source_schema_version: int = 0
    _directory: Path | None = None
    _databases: dict[str, Database] = field(default_factory=dict)
    keystore: SoftwareBackend | None = None

    def __enter__(self) -> SourceSnapshot:
        self._directory = Path(tempfile.mkdtemp(prefix="mock-kms-migrate-"))
        try:
            self._take()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def directory(self) -> Path:
        assert self._directory is not None, "use SourceSnapshot as a context manager"
        return self._directory

    def database(self, component: Component) -> Database:
        """The copy holding ``component``'s tables."""
        return self._databases[component.name]

    def _take(self) -> None:
        kms_file = self.data_dir / DATABASE_FILE
        if not kms_file.is_file():
            raise MigrationError(
                f"--from {self.data_dir}: no mock-kms data directory there ({DATABASE_FILE}"
                " is missing)"
            )
        copy_sqlite(kms_file, self.directory / DATABASE_FILE)
        # Missing files (a PKCS#11-only deployment has no keystore, one run with --no-s3 no
        # S3 database) are created empty by the initialisation below: nothing to copy.
        keystore_file = self.data_dir / KEYSTORE_FILE
        if keystore_file.is_file():
            copy_sqlite(keystore_file, self.directory / KEYSTORE_FILE)
        s3_file = self.s3_dir / S3_DATABASE_FILE
        (self.directory / "s3").mkdir()
        if s3_file.is_file():
            copy_sqlite(s3_file, self.directory / "s3" / S3_DATABASE_FILE)
        self._upgrade()

    def _upgrade(self) -> None:
        """Bring every copy to the current schema through the code ``serve`` runs."""
        kms = open_database(self.directory / DATABASE_FILE)
        try:
            self.source_schema_version = kms.schema_version(SCHEMA_COMPONENT)
        except DatabaseError as exc:
            raise MigrationError(f"cannot read {self.data_dir / DATABASE_FILE}: {exc}") from None
        finally:
            kms.close()
        if self.source_schema_version > SCHEMA_VERSION:
            raise MigrationError(
                f"{self.data_dir / DATABASE_FILE} was written by a newer mock-kms (schema"
                f" {self.source_schema_version}, this one knows {SCHEMA_VERSION}): run the"
                " migration with that version"
            )
        store = MetadataStore(self.directory)
        try:
            store.initialise()
        except StoreError as exc:
            raise MigrationError(str(exc)) from None
        finally:
            store.close()
        try:
            self.keystore = SoftwareBackend(self.directory, self.root_key)
        except BackendError as exc:
            raise MigrationError(f"cannot read {self.data_dir / KEYSTORE_FILE}: {exc}") from None
        s3_store = S3Store(self.directory / "s3")
        try:
            s3_store.initialise()
        except (sqlite3.Error, DatabaseError) as exc:
            raise MigrationError(f"cannot read {self.s3_dir / S3_DATABASE_FILE}: {exc}") from None
        finally:
            s3_store.close()
        self._databases = {
            KMS.name: open_database(self.directory / DATABASE_FILE),
            KEYSTORE.name: open_database(self.directory / KEYSTORE_FILE),
            S3.name: open_database(self.directory / "s3" / S3_DATABASE_FILE),
        }
        for component in (KMS, KEYSTORE, S3):
            unknown = unknown_tables(component, sqlite_tables(self.database(component)))
            if unknown:
                raise MigrationError(
                    f"the {component.name} database of {self.data_dir} holds table(s)"
                    f" {', '.join(unknown)} that this mock-kms does not know how to migrate"
                )

    def close(self) -> None:
        """Close the copies and remove them."""
        for database in self._databases.values():
            database.close()
        self._databases = {}
        if self.keystore is not None:
            self.keystore.close()
            self.keystore = None
        if self._directory is not None:
            shutil.rmtree(self._directory, ignore_errors=True)
            self._directory = None
