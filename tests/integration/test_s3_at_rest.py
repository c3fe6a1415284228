"""What is on disk after objects are written in every mode: no plaintext object bytes, no
plaintext data key, no SSE-C key in any form, in any file of the data directory or the log.

The data keys searched for are the real ones: each is recovered the way only the service
could (KMS Decrypt with the object's context; the SSE-S3 master key unwrapped with the root
key) and shown to decrypt the stored segment, so not finding them means something.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import sqlite3
from collections.abc import Iterator
from typing import Any

import pytest

from clients.sse import CustomerKey, sse_kms
from local_secrets.root_key import load_root_key
from s3_service.chunks import decrypt_range
from s3_service.sse_s3 import SseS3Keys, load_master_key
from tests.support.s3 import kms_client, occurrences, s3_client
from tests.support.server import RunningServer, start_server

BUCKET = "at-rest"
MARKER = b"PLAINTEXT-OBJECT-MARKER;"
CUSTOMER = CustomerKey.generate()


def plaintext(size: int) -> bytes:
    """Random bytes with a recognisable marker every 4 KiB."""
    data = bytearray(os.urandom(size))
    for offset in range(0, size - len(MARKER), 4096):
        data[offset : offset + len(MARKER)] = MARKER
    return bytes(data)


OBJECTS = {"sse-s3": plaintext(150_000), "sse-kms": plaintext(150_000), "sse-c": plaintext(150_000)}
MULTIPART = plaintext(5 * 1024 * 1024 + 4096)


def needles(data: bytes) -> list[bytes]:
    """The marker and 32-byte windows from across the object."""
    windows = [data[offset : offset + 32] for offset in range(7, len(data) - 32, len(data) // 9)]
    return [MARKER, *windows]


def key_forms(key: bytes) -> list[bytes]:
    return [
        key,
        base64.b64encode(key),
        key.hex().encode(),
        key.hex().upper().encode(),
        base64.urlsafe_b64encode(key),
    ]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Any]]:
    server = start_server(tmp_path_factory.mktemp("atrest") / "data", extra_args=["--tls"])
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_object(Bucket=BUCKET, Key="sse-s3", Body=OBJECTS["sse-s3"])
        s3.put_object(Bucket=BUCKET, Key="sse-kms", Body=OBJECTS["sse-kms"], **sse_kms())
        s3.put_object(Bucket=BUCKET, Key="sse-c", Body=OBJECTS["sse-c"], **CUSTOMER.put_args())
        upload = s3.create_multipart_upload(Bucket=BUCKET, Key="mpu", **CUSTOMER.put_args())
        parts = []
        for number, piece in enumerate(
            (MULTIPART[: 5 * 1024 * 1024], MULTIPART[5 * 1024 * 1024 :]), start=1
        ):
            etag = s3.upload_part(
                Bucket=BUCKET, Key="mpu", UploadId=upload["UploadId"], PartNumber=number,
                Body=piece, **CUSTOMER.put_args(),
            )["ETag"]  # fmt: skip
            parts.append({"PartNumber": number, "ETag": etag})
        s3.complete_multipart_upload(
            Bucket=BUCKET, Key="mpu", UploadId=upload["UploadId"],
            MultipartUpload={"Parts": parts}, **CUSTOMER.put_args(),
        )  # fmt: skip
        s3.copy_object(
            Bucket=BUCKET, Key="sse-c-to-kms", CopySource={"Bucket": BUCKET, "Key": "sse-c"},
            **CUSTOMER.copy_source_args(), **sse_kms(),
        )  # fmt: skip
        yield server, s3
    finally:
        server.stop()


def stored(server: RunningServer, key: str) -> tuple[dict[str, Any], list[tuple[str, bytes, int]]]:
    with sqlite3.connect(server.data_dir / "s3" / "s3.sqlite3") as db:
        envelope, version = db.execute(
            "SELECT envelope, version_id FROM objects WHERE bucket = ? AND key = ?",
            (BUCKET, key.encode()),
        ).fetchone()
        segments = db.execute(
            "SELECT blob, salt, size FROM segments WHERE owner = ? ORDER BY idx", (version,)
        ).fetchall()
    return json.loads(envelope), [(blob, bytes(salt), size) for blob, salt, size in segments]


def decrypt_stored(server: RunningServer, key: str, data_key: bytes) -> bytes:
    _, segments = stored(server, key)
    out = bytearray()
    for blob, salt, size in segments:
        with (server.data_dir / "s3" / "blobs" / blob[:2] / blob).open("rb") as source:
            out += b"".join(decrypt_range(source, data_key, salt, size, 0, size - 1))
    return bytes(out)


def find(server: RunningServer, wanted: list[bytes]) -> dict[str, list[str]]:
    found = occurrences(server.data_dir, wanted)
    log = server.log_path.read_bytes()
    if any(needle in log for needle in wanted):
        found["server log"] = ["match"]
    return found


def test_objects_read_back(written: tuple[RunningServer, Any]) -> None:
    _, s3 = written
    assert s3.get_object(Bucket=BUCKET, Key="sse-s3")["Body"].read() == OBJECTS["sse-s3"]
    got = s3.get_object(Bucket=BUCKET, Key="mpu", **CUSTOMER.get_args())
    assert got["Body"].read() == MULTIPART


def test_no_plaintext_object_bytes_on_disk(written: tuple[RunningServer, Any]) -> None:
    server, _ = written
    wanted = [n for data in (*OBJECTS.values(), MULTIPART) for n in needles(data)]
    assert find(server, wanted) == {}
    # The scan does see what is stored in clear: object names live in the database.
    assert "s3/s3.sqlite3" in " ".join(find(server, [b"sse-c-to-kms"]))


def test_sse_kms_data_key_is_stored_only_encrypted(written: tuple[RunningServer, Any]) -> None:
    server, _ = written
    kms = kms_client(server)
    for key in ("sse-kms", "sse-c-to-kms"):
        envelope, _ = stored(server, key)
        data_key = kms.decrypt(
            CiphertextBlob=base64.b64decode(envelope["ciphertext"]),
            EncryptionContext=envelope["context"],
        )["Plaintext"]
        expected = OBJECTS["sse-kms"] if key == "sse-kms" else OBJECTS["sse-c"]
        assert decrypt_stored(server, key, data_key) == expected  # it is the real key
        assert find(server, key_forms(data_key)) == {}


def test_sse_s3_data_key_and_master_key_are_stored_only_wrapped(
    written: tuple[RunningServer, Any],
) -> None:
    server, _ = written
    root_key = load_root_key(server.data_dir, None, create=False)
    master = load_master_key(server.data_dir / "s3", root_key, create=False)
    envelope, _ = stored(server, "sse-s3")
    data_key = SseS3Keys(master).unwrap(base64.b64decode(envelope["wrapped_key"]), envelope["id"])
    assert decrypt_stored(server, "sse-s3", data_key) == OBJECTS["sse-s3"]
    assert find(server, key_forms(data_key) + key_forms(master)) == {}


def test_sse_c_key_is_stored_nowhere(written: tuple[RunningServer, Any]) -> None:
    server, _ = written
    # The key decrypts the stored segments, so it is the key that was used...
    assert decrypt_stored(server, "sse-c", CUSTOMER.key) == OBJECTS["sse-c"]
    assert decrypt_stored(server, "mpu", CUSTOMER.key) == MULTIPART
    # ...and no form of it, not even its MD5, was kept anywhere.
    md5 = hashlib.md5(CUSTOMER.key).digest()
    wanted = [*key_forms(CUSTOMER.key), md5, base64.b64encode(md5)]
    assert find(server, wanted) == {}
    envelope, _ = stored(server, "sse-c")
    assert set(envelope) == {"mode", "id", "salt", "hmac"}
