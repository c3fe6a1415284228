"""The S3 metadata store and segment files: atomic replacement, listing order, sweeping."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from s3_service.blobs import BlobStore
from s3_service.envelope import SSE_KMS, SSE_S3, Envelope
from s3_service.errors import S3Error
from s3_service.records import (
    BucketEncryption,
    BucketRecord,
    ContentAttributes,
    ObjectRecord,
    PartRecord,
    Segment,
    UploadRecord,
)
from s3_service.store import S3Store, successor


@pytest.fixture()
def store(tmp_path: Path) -> S3Store:
    s = S3Store(tmp_path)
    s.initialise()
    s.create_bucket(BucketRecord("bucket", "111122223333", "us-east-1", time.time()))
    return s


def record(key: str, blob: str, version: str = "") -> ObjectRecord:
    return ObjectRecord(
        bucket="bucket",
        key=key,
        version_id=version or f"v-{key}-{blob}",
        size=1,
        etag="e",
        last_modified=time.time(),
        attributes=ContentAttributes(metadata={"a": "b"}),
        envelope=Envelope(SSE_S3, "id", wrapped_key=b"w"),
        segments=(Segment(blob, b"s" * 16, 1),),
    )


def test_overwrite_returns_the_old_blobs_and_keeps_the_new(store: S3Store) -> None:
    assert store.put_object(record("k", "blob1")) == []
    assert store.put_object(record("k", "blob2")) == ["blob1"]
    found = store.get_object("bucket", "k")
    assert [s.blob for s in found.segments] == ["blob2"]
    assert found.attributes.metadata == {"a": "b"}
    assert store.referenced_blobs() == {"blob2"}


def test_if_none_match_refuses_an_existing_key(store: S3Store) -> None:
    store.put_object(record("k", "blob1"))
    with pytest.raises(S3Error) as caught:
        store.put_object(record("k", "blob2"), if_none_match=True)
    assert caught.value.status == 412
    assert [s.blob for s in store.get_object("bucket", "k").segments] == ["blob1"]


def test_missing_bucket_and_key_errors(store: S3Store) -> None:
    with pytest.raises(S3Error) as no_key:
        store.get_object("bucket", "nope")
    assert no_key.value.code == "NoSuchKey"
    with pytest.raises(S3Error) as no_bucket:
        store.get_object("other", "k")
    assert no_bucket.value.code == "NoSuchBucket"


def test_listing_is_in_utf8_byte_order(store: S3Store) -> None:
    keys = ["b", "a/z", "é", "a", "\uffff", "a0", "Z"]
    for key in keys:
        store.put_object(record(key, f"blob-{len(key)}-{ord(key[0])}"))
    listed = [item.key for item in store.list_objects("bucket", b"", None, 100)]
    assert listed == sorted(keys, key=lambda k: k.encode())
    assert [i.key for i in store.list_objects("bucket", b"a", None, 100)] == ["a", "a/z", "a0"]
    assert [i.key for i in store.list_objects("bucket", b"", b"a0", 2)] == ["b", "é"]


def test_successor() -> None:
    assert successor(b"a/") == b"a0"
    assert successor(b"a\xff") == b"b"
    assert successor(b"\xff\xff") is None


def test_bucket_lifecycle(store: S3Store) -> None:
    assert store.create_bucket(BucketRecord("bucket", "111122223333", "us-east-1", 0)) is False
    with pytest.raises(S3Error) as taken:
        store.create_bucket(BucketRecord("bucket", "444455556666", "us-east-1", 0))
    assert taken.value.code == "BucketAlreadyExists"
    store.set_bucket_encryption("bucket", BucketEncryption(SSE_KMS, "alias/x", True, True))
    assert store.get_bucket("bucket").effective_encryption.kms_key_id == "alias/x"
    store.put_object(record("k", "blob1"))
    with pytest.raises(S3Error) as not_empty:
        store.delete_bucket("bucket")
    assert not_empty.value.code == "BucketNotEmpty"
    store.delete_object("bucket", "k")
    store.delete_bucket("bucket")
    with pytest.raises(S3Error):
        store.get_bucket("bucket")


def test_failed_completion_changes_nothing(store: S3Store) -> None:
    upload = UploadRecord(
        "up", "bucket", "k", time.time(), "111122223333", ContentAttributes(),
        Envelope(SSE_S3, "up", wrapped_key=b"w"),
    )  # fmt: skip
    store.create_upload(upload)
    store.put_part("up", PartRecord(1, Segment("p1", b"s" * 16, 5), "etag1", time.time()))
    assert store.put_part("up", PartRecord(1, Segment("p1b", b"s" * 16, 5), "e", 0)) == ["p1"]

    def refuse(parts: dict[int, PartRecord]) -> ObjectRecord:
        raise S3Error(400, "InvalidPart", "no")

    with pytest.raises(S3Error):
        store.complete_upload(upload, refuse)
    assert [p.part_number for p in store.list_parts("up", 0, 10)] == [1]

    def build(parts: dict[int, PartRecord]) -> ObjectRecord:
        return record("k", parts[1].segment.blob, version="up")

    done, unused = store.complete_upload(upload, build)
    assert unused == [] and done.segments[0].blob == "p1b"
    with pytest.raises(S3Error) as gone:
        store.abort_upload("up")
    assert gone.value.code == "NoSuchUpload"


def test_blob_writer_commit_and_discard(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.initialise()
    with blobs.writer() as writer:
        writer.write(b"kept")
        blob_id = writer.commit()
    assert blobs.path(blob_id).read_bytes() == b"kept"
    with pytest.raises(RuntimeError), blobs.writer() as failing:
        failing.write(b"lost")
        failing.commit()
        raise RuntimeError("metadata update failed")
    assert not blobs.path(failing.blob_id).exists()
    with blobs.writer() as abandoned:
        abandoned.write(b"never committed")
    assert list(blobs.tmp_dir.iterdir()) == []


def test_sweep_respects_references_and_grace(tmp_path: Path) -> None:
    blobs = BlobStore(tmp_path)
    blobs.initialise()
    ids = []
    for data in (b"a", b"b"):
        with blobs.writer() as writer:
            writer.write(data)
            ids.append(writer.commit())
    leftover = blobs.tmp_dir / "dead.tmp"
    leftover.write_bytes(b"partial")
    assert blobs.sweep({ids[0]}, grace_seconds=3600) == 0
    old = time.time() - 7200
    for path in (blobs.path(ids[0]), blobs.path(ids[1]), leftover):
        os.utime(path, (old, old))
    assert blobs.sweep({ids[0]}, grace_seconds=3600) == 2
    assert blobs.path(ids[0]).exists()
    assert not blobs.path(ids[1]).exists() and not leftover.exists()
