"""The S3 metadata database: buckets, objects and their segments, multipart uploads and their
parts; SQLite (WAL) in the S3 directory, or the PostgreSQL database of ``--database-url``
shared by every host (:mod:`database`). Object data itself lives in :mod:`s3_service.blobs`,
in the S3 directory every host of one database mounts.

Every change is one transaction (writers serialised), which is what makes an overwrite atomic:
the object row and its segment list switch from the old files to the new ones in one commit
(SQLite ``synchronous=FULL``, so a committed write survives a crash; PostgreSQL commits
durably). Methods that drop segments return their blob ids; the caller deletes the files after
the commit, never before.

Object keys are stored as UTF-8 BLOBs (BYTEA) so that both engines order them bytewise,
exactly as S3 orders listings.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from database import Database, open_database
from s3_service import errors
from s3_service.envelope import Envelope
from s3_service.records import (
    BucketEncryption,
    BucketRecord,
    ContentAttributes,
    ListedObject,
    ObjectRecord,
    PartRecord,
    Segment,
    UploadRecord,
)

DATABASE_FILE = "s3.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS buckets (
    name TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    region TEXT NOT NULL,
    created REAL NOT NULL,
    encryption TEXT
);
CREATE TABLE IF NOT EXISTS objects (
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    version_id TEXT NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    metadata TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    envelope TEXT NOT NULL,
    checksum TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS segments (
    owner TEXT NOT NULL,
    idx INTEGER NOT NULL,
    blob TEXT NOT NULL,
    salt BLOB NOT NULL,
    size INTEGER NOT NULL,
    PRIMARY KEY (owner, idx)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS uploads (
    upload_id TEXT PRIMARY KEY,
    bucket TEXT NOT NULL,
    key BLOB NOT NULL,
    initiated REAL NOT NULL,
    account_id TEXT NOT NULL,
    content_type TEXT NOT NULL,
    headers TEXT NOT NULL,
    metadata TEXT NOT NULL,
    storage_class TEXT NOT NULL,
    envelope TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (bucket, key);
CREATE TABLE IF NOT EXISTS parts (
    upload_id TEXT NOT NULL,
    part_number INTEGER NOT NULL,
    blob TEXT NOT NULL,
    salt BLOB NOT NULL,
    size INTEGER NOT NULL,
    etag TEXT NOT NULL,
    last_modified REAL NOT NULL,
    PRIMARY KEY (upload_id, part_number)
) WITHOUT ROWID;
"""

_OBJECT_COLUMNS = (
    "bucket, key, version_id, size, etag, last_modified, content_type, headers, metadata, "
    "storage_class, envelope, checksum"
)
#: An overwrite replaces every column but the key (portable: SQLite 3.24+ and PostgreSQL).
_OBJECT_UPSERT = " ON CONFLICT (bucket, key) DO UPDATE SET " + ", ".join(
    f"{column} = excluded.{column}" for column in _OBJECT_COLUMNS.split(", ")[2:]
)
_UPLOAD_COLUMNS = (
    "upload_id, bucket, key, initiated, account_id, content_type, headers, metadata, "
    "storage_class, envelope"
)


class S3Store:
    """Thread-safe access to the metadata database (each thread its connection, opened lazily,
    so nothing is shared across a gunicorn fork). Raises
    :class:`database.DatabaseUnavailableError` when the database cannot be reached."""

    def __init__(self, directory: Path, database_url: str | None = None) -> None:
        """The records in ``database_url`` (PostgreSQL) if given, else SQLite in
        ``directory``."""
        self.path = directory / DATABASE_FILE
        self._db: Database = open_database(database_url or self.path, synchronous="FULL")

    def initialise(self) -> None:
        """Create the tables if needed."""
        with self._write():
            self._db.run_script(_SCHEMA)

    def close(self) -> None:
        """Release this thread's connection."""
        self._db.close()

    def dispose(self) -> None:
        """Release everything this process holds of the database (before a fork)."""
        self._db.dispose()

    @contextlib.contextmanager
    def _write(self) -> Iterator[Database]:
        # Nothing caches S3 records: their writes leave the key store's caches alone.
        with self._db.transaction(invalidates_caches=False):
            yield self._db

    # --- buckets ----------------------------------------------------------------------------
    def create_bucket(self, record: BucketRecord) -> bool:
        """Create the bucket; False if the same account already owns it.

        Raises ``BucketAlreadyExists`` if another account owns the name.
        """
        with self._write() as db:
            row = db.execute(
                "SELECT account_id FROM buckets WHERE name = ?", (record.name,)
            ).fetchone()
            if row is not None:
                if row[0] != record.account_id:
                    raise errors.bucket_already_exists(record.name)
                return False
            db.execute(
                "INSERT INTO buckets (name, account_id, region, created, encryption) "
                "VALUES (?, ?, ?, ?, NULL)",
                (record.name, record.account_id, record.region, record.created),
            )
        return True

    def get_bucket(self, name: str) -> BucketRecord:
        """Raises ``NoSuchBucket``."""
        row = self._db.execute(
            "SELECT name, account_id, region, created, encryption FROM buckets WHERE name = ?",
            (name,),
        ).fetchone()
        if row is None:
            raise errors.no_such_bucket(name)
        return _bucket(row)

    def list_buckets(self, account_id: str) -> list[BucketRecord]:
        rows = self._db.execute(
            "SELECT name, account_id, region, created, encryption FROM buckets "
            "WHERE account_id = ? ORDER BY name",
            (account_id,),
        ).fetchall()
        return [_bucket(row) for row in rows]

    def delete_bucket(self, name: str) -> list[str]:
        """Delete an empty bucket, aborting its multipart uploads; returns their blobs.

        Raises ``NoSuchBucket`` or ``BucketNotEmpty``.
        """
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (name,)).fetchone() is None:
                raise errors.no_such_bucket(name)
            if db.execute("SELECT 1 FROM objects WHERE bucket = ? LIMIT 1", (name,)).fetchone():
                raise errors.bucket_not_empty(name)
            uploads = [
                row[0]
                for row in db.execute("SELECT upload_id FROM uploads WHERE bucket = ?", (name,))
            ]
            blobs: list[str] = []
            for upload_id in uploads:
                blobs.extend(_drop_upload(db, upload_id))
            db.execute("DELETE FROM buckets WHERE name = ?", (name,))
        return blobs

    def set_bucket_encryption(self, name: str, encryption: BucketEncryption | None) -> None:
        """Replace (None: remove) the bucket's default encryption. Raises ``NoSuchBucket``."""
        with self._write() as db:
            updated = db.execute(
                "UPDATE buckets SET encryption = ? WHERE name = ?",
                (encryption.to_json() if encryption else None, name),
            )
            if updated.rowcount == 0:
                raise errors.no_such_bucket(name)

    # --- objects ----------------------------------------------------------------------------
    def get_object(self, bucket: str, key: str) -> ObjectRecord:
        """Raises ``NoSuchBucket`` or ``NoSuchKey``."""
        db = self._db
        row = db.execute(
            f"SELECT {_OBJECT_COLUMNS} FROM objects WHERE bucket = ? AND key = ?",  # noqa: S608
            (bucket, key.encode()),
        ).fetchone()
        if row is None:
            self.get_bucket(bucket)
            raise errors.no_such_key(key)
        return _object(row, _segments(db, row[2]))

    def put_object(self, record: ObjectRecord, *, if_none_match: bool = False) -> list[str]:
        """Make ``record`` the object at its key, atomically; returns the replaced object's
        blobs. Raises ``NoSuchBucket``, or ``PreconditionFailed`` when ``if_none_match`` and
        the key exists."""
        with self._write() as db:
            return self._replace_object(db, record, if_none_match=if_none_match)

    def _replace_object(
        self, db: Database, record: ObjectRecord, *, if_none_match: bool
    ) -> list[str]:
        if db.execute("SELECT 1 FROM buckets WHERE name = ?", (record.bucket,)).fetchone() is None:
            raise errors.no_such_bucket(record.bucket)
        old = db.execute(
            "SELECT version_id FROM objects WHERE bucket = ? AND key = ?",
            (record.bucket, record.key.encode()),
        ).fetchone()
        blobs: list[str] = []
        if old is not None:
            if if_none_match:
                raise errors.precondition_failed("If-None-Match")
            blobs = _drop_segments(db, old[0])
        db.execute(
            f"INSERT INTO objects ({_OBJECT_COLUMNS}) "  # noqa: S608
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)" + _OBJECT_UPSERT,
            (
                record.bucket,
                record.key.encode(),
                record.version_id,
                record.size,
                record.etag,
                record.last_modified,
                *_attribute_columns(record.attributes),
                record.envelope.to_json(),
                json.dumps(record.checksum),
            ),
        )
        db.executemany(
            "INSERT INTO segments (owner, idx, blob, salt, size) VALUES (?, ?, ?, ?, ?)",
            [
                (record.version_id, index, segment.blob, segment.salt, segment.size)
                for index, segment in enumerate(record.segments)
            ],
        )
        return blobs

    def delete_object(self, bucket: str, key: str) -> list[str]:
        """Delete the object if it exists; returns its blobs. Raises ``NoSuchBucket``."""
        with self._write() as db:
            if db.execute("SELECT 1 FROM buckets WHERE name = ?", (bucket,)).fetchone() is None:
                raise errors.no_such_bucket(bucket)
            row = db.execute(
                "SELECT version_id FROM objects WHERE bucket = ? AND key = ?",
                (bucket, key.encode()),
            ).fetchone()
            if row is None:
                return []
            db.execute("DELETE FROM objects WHERE bucket = ? AND key = ?", (bucket, key.encode()))
            return _drop_segments(db, row[0])

    def list_objects(
        self,
        bucket: str,
        prefix: bytes,
        after: bytes | None,
        limit: int,
        *,
        inclusive: bool = False,
    ) -> list[ListedObject]:
        """Up to ``limit`` objects whose key starts with ``prefix`` and sorts after ``after``
        (bytewise; at or after it when ``inclusive``), in key order."""
        clauses = ["bucket = ?"]
        params: list[object] = [bucket]
        if prefix:
            clauses.append("key >= ?")
            params.append(prefix)
            upper = successor(prefix)
            if upper is not None:
                clauses.append("key < ?")
                params.append(upper)
        if after is not None:
            clauses.append("key >= ?" if inclusive else "key > ?")
            params.append(after)
        params.append(limit)
        rows = self._db.execute(
            "SELECT key, size, etag, last_modified, storage_class FROM objects "  # noqa: S608
            f"WHERE {' AND '.join(clauses)} ORDER BY key LIMIT ?",
            params,
        ).fetchall()
        return [ListedObject(bytes(r[0]).decode(), r[1], r[2], r[3], r[4]) for r in rows]

    def referenced_blobs(self) -> set[str]:
        """Every blob an object or a part refers to (for the startup sweep)."""
        db = self._db
        blobs = {row[0] for row in db.execute("SELECT blob FROM segments")}
        blobs.update(row[0] for row in db.execute("SELECT blob FROM parts"))
        return blobs

    # --- multipart uploads ------------------------------------------------------------------
    def create_upload(self, record: UploadRecord) -> None:
        """Raises ``NoSuchBucket``."""
        with self._write() as db:
            if (
                db.execute("SELECT 1 FROM buckets WHERE name = ?", (record.bucket,)).fetchone()
                is None
            ):
                raise errors.no_such_bucket(record.bucket)
            db.execute(
                f"INSERT INTO uploads ({_UPLOAD_COLUMNS}) "  # noqa: S608
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.upload_id,
                    record.bucket,
                    record.key.encode(),
                    record.initiated,
                    record.account_id,
                    *_attribute_columns(record.attributes),
                    record.envelope.to_json(),
                ),
            )

    def get_upload(self, bucket: str, key: str, upload_id: str) -> UploadRecord:
        """Raises ``NoSuchBucket`` or ``NoSuchUpload`` (also for an id of another key)."""
        row = self._db.execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads "  # noqa: S608
            "WHERE upload_id = ? AND bucket = ? AND key = ?",
            (upload_id, bucket, key.encode()),
        ).fetchone()
        if row is None:
            self.get_bucket(bucket)
            raise errors.no_such_upload(upload_id)
        return _upload(row)

    def list_uploads(self, bucket: str, prefix: bytes, limit: int) -> list[UploadRecord]:
        rows = self._db.execute(
            f"SELECT {_UPLOAD_COLUMNS} FROM uploads "  # noqa: S608
            "WHERE bucket = ? AND substr(key, 1, CAST(? AS INTEGER)) = ?"
            " ORDER BY key, initiated LIMIT ?",
            (bucket, len(prefix), prefix, limit),
        ).fetchall()
        return [_upload(row) for row in rows]

    def put_part(self, upload_id: str, part: PartRecord) -> list[str]:
        """Store (or replace) a part; returns the replaced part's blob.

        Raises ``NoSuchUpload`` if the upload was completed or aborted meanwhile.
        """
        with self._write() as db:
            if (
                db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
                is None
            ):
                raise errors.no_such_upload(upload_id)
            old = db.execute(
                "SELECT blob FROM parts WHERE upload_id = ? AND part_number = ?",
                (upload_id, part.part_number),
            ).fetchone()
            db.execute(
                "INSERT INTO parts "
                "(upload_id, part_number, blob, salt, size, etag, last_modified) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (upload_id, part_number) DO UPDATE SET"
                " blob = excluded.blob, salt = excluded.salt, size = excluded.size,"
                " etag = excluded.etag, last_modified = excluded.last_modified",
                (
                    upload_id,
                    part.part_number,
                    part.segment.blob,
                    part.segment.salt,
                    part.segment.size,
                    part.etag,
                    part.last_modified,
                ),
            )
        return [old[0]] if old is not None else []

    def list_parts(self, upload_id: str, after: int, limit: int) -> list[PartRecord]:
        rows = self._db.execute(
            "SELECT part_number, blob, salt, size, etag, last_modified FROM parts "
            "WHERE upload_id = ? AND part_number > ? ORDER BY part_number LIMIT ?",
            (upload_id, after, limit),
        ).fetchall()
        return [_part(row) for row in rows]

    def complete_upload(
        self,
        upload: UploadRecord,
        build: Callable[[dict[int, PartRecord]], ObjectRecord],
    ) -> tuple[ObjectRecord, list[str]]:
        """Turn the upload into an object in one transaction.

        ``build`` receives the upload's parts by number (read inside the transaction, so no
        part can change underneath) and returns the object, or raises an S3 error, which
        leaves everything as it was. Returns the object and the blobs to delete: parts not
        used and the segments of the object it replaced. Raises ``NoSuchUpload``.
        """
        with self._write() as db:
            if (
                db.execute(
                    "SELECT 1 FROM uploads WHERE upload_id = ?", (upload.upload_id,)
                ).fetchone()
                is None
            ):
                raise errors.no_such_upload(upload.upload_id)
            parts = {
                row[0]: _part(row)
                for row in db.execute(
                    "SELECT part_number, blob, salt, size, etag, last_modified FROM parts "
                    "WHERE upload_id = ?",
                    (upload.upload_id,),
                )
            }
            record = build(parts)
            used = {segment.blob for segment in record.segments}
            blobs = self._replace_object(db, record, if_none_match=False)
            blobs.extend(
                part.segment.blob for part in parts.values() if part.segment.blob not in used
            )
            db.execute("DELETE FROM parts WHERE upload_id = ?", (upload.upload_id,))
            db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload.upload_id,))
        return record, blobs

    def abort_upload(self, upload_id: str) -> list[str]:
        """Drop the upload and its parts; returns their blobs. Raises ``NoSuchUpload``."""
        with self._write() as db:
            if (
                db.execute("SELECT 1 FROM uploads WHERE upload_id = ?", (upload_id,)).fetchone()
                is None
            ):
                raise errors.no_such_upload(upload_id)
            return _drop_upload(db, upload_id)


def successor(prefix: bytes) -> bytes | None:
    """The smallest byte string greater than every string starting with ``prefix`` (None if
    there is none, i.e. the prefix is all 0xFF bytes)."""
    trimmed = prefix.rstrip(b"\xff")
    if not trimmed:
        return None
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def _drop_segments(db: Database, owner: str) -> list[str]:
    blobs = [row[0] for row in db.execute("SELECT blob FROM segments WHERE owner = ?", (owner,))]
    db.execute("DELETE FROM segments WHERE owner = ?", (owner,))
    return blobs


def _drop_upload(db: Database, upload_id: str) -> list[str]:
    blobs = [
        row[0] for row in db.execute("SELECT blob FROM parts WHERE upload_id = ?", (upload_id,))
    ]
    db.execute("DELETE FROM parts WHERE upload_id = ?", (upload_id,))
    db.execute("DELETE FROM uploads WHERE upload_id = ?", (upload_id,))
    return blobs


def _segments(db: Database, owner: str) -> tuple[Segment, ...]:
    rows = db.execute(
        "SELECT blob, salt, size FROM segments WHERE owner = ? ORDER BY idx", (owner,)
    ).fetchall()
    return tuple(Segment(row[0], bytes(row[1]), row[2]) for row in rows)


def _bucket(row: Any) -> BucketRecord:
    name, account_id, region, created, encryption = row
    return BucketRecord(
        name=str(name),
        account_id=str(account_id),
        region=str(region),
        created=float(created),
        encryption=BucketEncryption.from_json(str(encryption)) if encryption else None,
    )


def _attribute_columns(attributes: ContentAttributes) -> tuple[str, str, str, str]:
    """``attributes`` as the ``content_type, headers, metadata, storage_class`` columns of the
    objects and uploads tables; :func:`_attributes` reads them back."""
    return (
        attributes.content_type,
        json.dumps(attributes.headers),
        json.dumps(attributes.metadata),
        attributes.storage_class,
    )


def _attributes(
    content_type: Any, headers: Any, metadata: Any, storage_class: Any
) -> ContentAttributes:
    return ContentAttributes(
        content_type=str(content_type),
        headers=json.loads(str(headers)),
        metadata=json.loads(str(metadata)),
        storage_class=str(storage_class),
    )


def _object(row: Any, segments: tuple[Segment, ...]) -> ObjectRecord:
    (bucket, key, version_id, size, etag, modified, ctype, headers, meta, sclass, env, checksum) = (
        row
    )
    return ObjectRecord(
        bucket=str(bucket),
        key=bytes(key).decode(),
        version_id=str(version_id),
        size=int(size),
        etag=str(etag),
        last_modified=float(modified),
        attributes=_attributes(ctype, headers, meta, sclass),
        envelope=Envelope.from_json(str(env)),
        segments=segments,
        checksum=json.loads(str(checksum)),
    )


def _upload(row: Any) -> UploadRecord:
    upload_id, bucket, key, initiated, account_id, ctype, headers, meta, sclass, env = row
    return UploadRecord(
        upload_id=str(upload_id),
        bucket=str(bucket),
        key=bytes(key).decode(),
        initiated=float(initiated),
        account_id=str(account_id),
        attributes=_attributes(ctype, headers, meta, sclass),
        envelope=Envelope.from_json(str(env)),
    )


def _part(row: Any) -> PartRecord:
    number, blob, salt, size, etag, modified = row
    return PartRecord(
        part_number=int(number),
        segment=Segment(str(blob), bytes(salt), int(size)),
        etag=str(etag),
        last_modified=float(modified),
    )
