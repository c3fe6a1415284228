"""``mock-kms migrate-store --from DATA_DIR --to postgresql://...``: the command line.

Order of work, each step before anything irreversible: read the root key and take consistent
copies of the source (the source is never changed); check that the root key opens every
wrapped secret of the source; initialise the target schemas through the code ``serve`` runs;
refuse a target that already holds state; copy the S3 files; copy every row in one
transaction. Errors are one line on stderr with exit status 2, like every ``mock-kms``
command; the report says what was copied and what every host of the new database needs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from backends.base import BackendError
from backends.software import SoftwareBackend
from database import Database, DatabaseError, is_database_url, open_database, redact_url
from kms_service.domain.errors import ConfigurationError
from kms_service.store import MetadataStore, StoreError
from kms_service.store.metadata import DATABASE_FILE, SCHEMA_VERSION
from kms_service.store_migration.plan import COMPONENTS, KMS, S3
from kms_service.store_migration.root_key_check import verify_root_key
from kms_service.store_migration.rows import TableCount, copy_rows, refuse_occupied
from kms_service.store_migration.s3_files import S3FilesCopied, copy_s3_files, same_directory
from kms_service.store_migration.snapshot import MigrationError, SourceSnapshot
from local_secrets.root_key import ROOT_KEY_FILE, RootKeyError, load_root_key
from s3_service.service import S3_DIRECTORY
from s3_service.sse_s3 import MASTER_KEY_FILE
from s3_service.store import S3Store

ROOT_KEY_ENV = "MOCK_KMS_ROOT_KEY"


@dataclass(frozen=True)
class MigrationReport:
    """What :func:`migrate_store` did, for the command's output and for tests."""

    source: Path
    target: str
    source_schema_version: int
    counts: list[TableCount]
    materials_verified: int
    root_key_source: str
    s3_dir: Path
    s3_files: S3FilesCopied | None
    token_keys: int


def migrate_store(
    source_dir: Path,
    target_url: str,
    *,
    target_s3_dir: Path | None = None,
    source_s3_dir: Path | None = None,
    root_key_env: str | None = None,
) -> MigrationReport:
    """Copy the SQLite deployment in ``source_dir`` (S3 state in ``source_s3_dir``, default
    ``source_dir/s3``) into the empty PostgreSQL database ``target_url`` and its S3 object
    data into ``target_s3_dir`` (default: left where it is).

    ``root_key_env``: ``MOCK_KMS_ROOT_KEY``'s value, else ``source_dir/root.key`` is read.
    All rows are committed in one transaction or none is. Raises :class:`MigrationError`.
    """
    if not is_database_url(target_url):
        raise MigrationError("--to must be a postgresql://USER:PASSWORD@HOST:PORT/DB URL")
    if not source_dir.is_dir():
        raise MigrationError(f"--from {source_dir}: no such directory")
    if not (source_dir / DATABASE_FILE).is_file():
        raise MigrationError(
            f"--from {source_dir}: no mock-kms data directory there ({DATABASE_FILE} is missing)"
        )
    source_s3_dir = source_s3_dir or source_dir / S3_DIRECTORY
    target_s3_dir = target_s3_dir or source_s3_dir
    key_source = ROOT_KEY_ENV if root_key_env else str(source_dir / ROOT_KEY_FILE)
    try:
        root_key = load_root_key(source_dir, root_key_env, create=False)
    except RootKeyError as exc:
        raise MigrationError(str(exc)) from None
    target = open_database(target_url)
    try:
        with SourceSnapshot(source_dir, source_s3_dir, root_key) as snapshot:
            verified = verify_root_key(snapshot, root_key, key_source)
            # Checked before the schemas are initialised too, so a refused migration leaves
            # the target exactly as it was; checked again inside the copy's transaction.
            refuse_occupied(target, COMPONENTS)
            _initialise_target(snapshot.directory, target_url, target_s3_dir, root_key)
            s3_files = None
            if not same_directory(source_s3_dir, target_s3_dir):
                s3_files = copy_s3_files(
                    source_s3_dir, target_s3_dir, _referenced_blobs(snapshot.database(S3)), root_key
                )
            sources = {component.name: snapshot.database(component) for component in COMPONENTS}
            counts = copy_rows(sources, target, COMPONENTS)
            token_keys = int(
                snapshot.database(KMS)
                .execute("SELECT count(*) FROM keys WHERE backend <> 'software'")
                .fetchone()[0]
            )
            schema_version = snapshot.source_schema_version
    except DatabaseError as exc:
        raise MigrationError(f"nothing was copied: {exc}") from None
    finally:
        target.dispose()
    return MigrationReport(
        source=source_dir,
        target=redact_url(target_url),
        source_schema_version=schema_version,
        counts=counts,
        materials_verified=verified,
        root_key_source=key_source,
        s3_dir=target_s3_dir,
        s3_files=s3_files,
        token_keys=token_keys,
    )


def _initialise_target(scratch: Path, url: str, s3_dir: Path, root_key: bytes) -> None:
    """Create (or bring up to date) every schema in the target through the code ``serve``
    runs, and record (or check) the root key there. Raises :class:`MigrationError`."""
    store = MetadataStore(scratch, url)
    try:
        store.initialise()
    except StoreError as exc:
        raise MigrationError(str(exc)) from None
    try:
        keystore = SoftwareBackend(scratch, root_key, url)
        # Writes the root key check row of an empty target; refuses a target whose hosts
        # were started with another root key.
        keystore.check_root_key()
    except BackendError as exc:
        raise MigrationError(f"{redact_url(url)}: {exc}") from None
    S3Store(s3_dir, url).initialise()


def _referenced_blobs(database: Database) -> set[str]:
    rows = database.execute("SELECT blob FROM segments UNION SELECT blob FROM parts")
    return {str(row[0]) for row in rows}


def print_report(report: MigrationReport, out: TextIO) -> None:
    """The command's output: counts per table and what every host needs (never a secret)."""
    total = sum(count.rows for count in report.counts)
    print(
        f"mock-kms migrate-store: copied {report.source} into {report.target}"
        f" ({total} rows, one transaction)",
        file=out,
    )
    if report.source_schema_version < SCHEMA_VERSION:
        print(
            f"  the source's key store schema {report.source_schema_version} was brought to"
            f" {SCHEMA_VERSION} on a copy; {report.source} itself was not changed",
            file=out,
        )
    width = max(len(f"{count.component}.{count.table}") for count in report.counts)
    for count in report.counts:
        print(f"  {count.component + '.' + count.table:<{width}}  {count.rows:>7}", file=out)
    print(
        f"  {report.materials_verified} key material(s) checked: they open under the root key",
        file=out,
    )
    files = report.s3_files
    if files is None:
        print(f"S3 object data: stays in {report.s3_dir} (nothing to copy)", file=out)
    else:
        master = f" and {MASTER_KEY_FILE}" if files.master_key_copied else ""
        already = f" ({files.segments_present} already there)" if files.segments_present else ""
        print(
            f"S3 object data: {files.segments_copied} segment file(s){master} copied into"
            f" {report.s3_dir}{already}",
            file=out,
        )
    print("Every host of the new database needs:", file=out)
    hidden = " (password not shown)" if ":***@" in report.target else ""
    print(f"  --database-url {report.target}{hidden}", file=out)
    print(f"  --s3-dir {report.s3_dir} (the same directory, mounted on every host)", file=out)
    if report.root_key_source == ROOT_KEY_ENV:
        where = f"the root key this command read from {ROOT_KEY_ENV}, as {ROOT_KEY_ENV}"
    else:
        where = (
            f"the root key in {report.root_key_source}: its content as {ROOT_KEY_ENV}, or"
            f" the file copied (mode 0600) as {ROOT_KEY_FILE} into its --data-dir"
        )
    print(f"  {where}", file=out)
    if report.token_keys:
        print(
            f"  the same PKCS#11 token: {report.token_keys} key(s) keep their material there"
            " (--backend pkcs11, PKCS11_MODULE, PKCS11_TOKEN_LABEL, PKCS11_PIN)",
            file=out,
        )


def migrate_store_command(args: argparse.Namespace) -> int:
    """``mock-kms migrate-store``. Raises :class:`ConfigurationError` (exit status 2)."""
    target = args.to or os.environ.get("MOCK_KMS_DATABASE_URL")
    if not target:
        raise ConfigurationError(
            "migrate-store needs --to postgresql://... (or MOCK_KMS_DATABASE_URL)"
        )
    s3_dir = args.s3_dir or os.environ.get("MOCK_KMS_S3_DIR")
    # The pool logs every failed connection attempt; the command's error is one line.
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)
    try:
        report = migrate_store(
            Path(args.from_dir),
            target,
            target_s3_dir=Path(s3_dir) if s3_dir else None,
            source_s3_dir=Path(args.from_s3_dir) if args.from_s3_dir else None,
            root_key_env=os.environ.get(ROOT_KEY_ENV),
        )
    except MigrationError as exc:
        raise ConfigurationError(str(exc)) from None
    print_report(report, sys.stdout)
    return 0


def register(subparsers: Any) -> None:
    """Add ``migrate-store`` to the ``mock-kms`` command line."""
    command = subparsers.add_parser(
        "migrate-store",
        help="copy a SQLite data directory (keys, material, aliases, grants, S3) into PostgreSQL",
    )
    command.add_argument(
        "--from",
        dest="from_dir",
        required=True,
        help="the data directory to copy (stop its server first)",
    )
    command.add_argument(
        "--to",
        help="postgresql://USER:PASSWORD@HOST:5432/DB, empty (default MOCK_KMS_DATABASE_URL)",
    )
    command.add_argument(
        "--s3-dir",
        help="the --s3-dir every host will share; S3 object data is copied there"
        " (MOCK_KMS_S3_DIR; default: left in the source's S3 directory)",
    )
    command.add_argument(
        "--from-s3-dir",
        help="the source's S3 directory, if it ran with --s3-dir"
        f" (default DATA_DIR/{S3_DIRECTORY})",
    )
    command.set_defaults(handler=migrate_store_command)
