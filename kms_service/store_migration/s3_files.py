"""The S3 object data of the source copied into the ``--s3-dir`` every host shares.

Object data never lives in the database: encrypted segment files under ``blobs/`` and the
SSE-S3 master key file (wrapped under the root key) do. They are copied before the database
rows are committed, so when the commit lands every segment it names is already in place; a
migration that fails after this step leaves only unreferenced files, which the startup sweep
of ``mock-kms serve`` removes. Each file is written under ``tmp/``, fsynced and renamed, as
the S3 endpoint writes its own.
"""

from __future__ import annotations

import filecmp
import hmac
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from kms_service.store_migration.snapshot import MigrationError
from local_secrets.secret_files import create_secret_file
from s3_service.blobs import BlobStore
from s3_service.sse_s3 import MASTER_KEY_FILE, MasterKeyError, load_master_key


@dataclass(frozen=True)
class S3FilesCopied:
    """What :func:`copy_s3_files` did."""

    #: Segment files written into the target (already identical ones are not counted).
    segments_copied: int
    #: Segment files the target already had, byte for byte (a migration run again).
    segments_present: int
    #: Whether the master key file was written (False: there was none, or the same key).
    master_key_copied: bool


def same_directory(source: Path, target: Path) -> bool:
    """Whether ``source`` and ``target`` are one directory (then nothing is copied)."""
    try:
        return source.resolve() == target.resolve() or (
            target.exists() and os.path.samefile(source, target)
        )
    except OSError:
        return False


def check_master_key(source_dir: Path, target_dir: Path, root_key: bytes) -> None:
    """Raise :class:`MigrationError` when ``target_dir`` already has an S3 master key other
    than the source's: hosts started there already use it, and objects of the source would
    not open under it."""
    source_file = source_dir / MASTER_KEY_FILE
    target_file = target_dir / MASTER_KEY_FILE
    if not source_file.is_file() or not target_file.is_file():
        return
    try:
        source_key = load_master_key(source_dir, root_key, create=False)
        target_key = load_master_key(target_dir, root_key, create=False)
    except MasterKeyError as exc:
        raise MigrationError(str(exc)) from None
    if not hmac.compare_digest(source_key, target_key):
        raise MigrationError(
            f"{target_file} holds another S3 master key (hosts already started on"
            f" --s3-dir {target_dir}?): SSE-S3 objects of the source would not open under it;"
            " migrate into an --s3-dir no host has used yet"
        )


def copy_s3_files(
    source_dir: Path, target_dir: Path, blob_ids: Iterable[str], root_key: bytes
) -> S3FilesCopied:
    """Copy the segment files ``blob_ids`` and the master key from ``source_dir`` to
    ``target_dir`` (created 0700 as the S3 endpoint creates it). Raises
    :class:`MigrationError` when a referenced segment is missing or a file cannot be
    written."""
    check_master_key(source_dir, target_dir, root_key)
    source = BlobStore(source_dir)
    target = BlobStore(target_dir)
    copied = present = 0
    try:
        target.initialise()
        for blob_id in sorted(set(blob_ids)):
            origin = source.path(blob_id)
            if not origin.is_file():
                raise MigrationError(
                    f"segment file {origin} is missing although the source's S3 records name"
                    " it; nothing was copied into the database"
                )
            destination = target.path(blob_id)
            if destination.is_file() and filecmp.cmp(origin, destination, shallow=False):
                present += 1
                continue
            _copy_durably(origin, destination, target.tmp_dir)
            copied += 1
        master_copied = False
        master = source_dir / MASTER_KEY_FILE
        if master.is_file():
            master_copied = create_secret_file(target_dir / MASTER_KEY_FILE, master.read_bytes())
    except OSError as exc:
        raise MigrationError(f"cannot copy the S3 object data into {target_dir}: {exc}") from None
    return S3FilesCopied(copied, present, master_copied)


def _copy_durably(origin: Path, destination: Path, tmp_dir: Path) -> None:
    """``origin`` to ``destination`` through a fsynced file in ``tmp_dir`` and a rename."""
    destination.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temporary = tmp_dir / f"{destination.name}.migrate.tmp"
    temporary.unlink(missing_ok=True)  # left by an interrupted earlier run
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with origin.open("rb") as reader, os.fdopen(fd, "wb") as writer:
        shutil.copyfileobj(reader, writer, 1024 * 1024)
        writer.flush()
        os.fsync(writer.fileno())
    os.replace(temporary, destination)
    directory = os.open(destination.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
