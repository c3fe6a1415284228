"""Encryption errors as AWS answers them (docs/aws-behaviours.md, "S3 endpoint"), through boto3
against a real server: SSE-C key problems, SSE-C over plain HTTP, KMS keys that are disabled,
pending deletion or missing, and encryption contexts that are malformed or name another object."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Iterator
from typing import Any

import pytest

from clients.sse import CustomerKey, sse_kms
from tests.support.s3 import fails, kms_client, s3_client
from tests.support.server import RunningServer, running_server, start_server

BUCKET = "sse-errors"
KEY = CustomerKey.generate()
OTHER = CustomerKey.generate()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("s3err") / "data", extra_args=["--tls"]) as running:
        yield running


@pytest.fixture(scope="module")
def s3(server: RunningServer) -> Any:
    client = s3_client(server)
    client.create_bucket(Bucket=BUCKET)
    client.put_object(Bucket=BUCKET, Key="ssec", Body=b"secret data", **KEY.put_args())
    client.put_object(Bucket=BUCKET, Key="plain", Body=b"sse-s3 data")
    return client


@pytest.fixture(scope="module")
def kms(server: RunningServer) -> Any:
    return kms_client(server)


# --- SSE-C ------------------------------------------------------------------------------------
def test_get_without_key(s3: Any) -> None:
    status, code, message = fails(s3.get_object, Bucket=BUCKET, Key="ssec")
    assert (status, code) == (400, "InvalidRequest")
    assert message == (
        "The object was stored using a form of Server Side Encryption. The correct parameters "
        "must be provided to retrieve the object."
    )
    assert fails(s3.head_object, Bucket=BUCKET, Key="ssec")[0] == 400


def test_get_with_wrong_key(s3: Any) -> None:
    status, code, message = fails(s3.get_object, Bucket=BUCKET, Key="ssec", **OTHER.get_args())
    assert (status, code) == (403, "AccessDenied")
    assert "must provide the correct secret key" in message
    assert fails(s3.head_object, Bucket=BUCKET, Key="ssec", **OTHER.get_args())[0] == 403
    ranged = fails(s3.get_object, Bucket=BUCKET, Key="ssec", Range="bytes=0-1", **OTHER.get_args())
    assert ranged[:2] == (403, "AccessDenied")


def test_md5_mismatch(s3: Any) -> None:
    status, code, message = fails(
        s3.put_object,
        Bucket=BUCKET,
        Key="md5",
        Body=b"x",
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=KEY.base64,
        SSECustomerKeyMD5=OTHER.md5,
    )
    assert (status, code) == (400, "InvalidArgument")
    assert message == "The calculated MD5 hash of the key did not match the hash that was provided."
    assert fails(s3.head_object, Bucket=BUCKET, Key="md5", **KEY.get_args())[0] == 404


def test_key_of_the_wrong_length(s3: Any) -> None:
    status, code, message = fails(
        s3.put_object,
        Bucket=BUCKET,
        Key="short",
        Body=b"x",
        SSECustomerAlgorithm="AES256",
        SSECustomerKey=os.urandom(16),
    )
    assert (status, code) == (400, "InvalidArgument")
    assert message == "The secret key was invalid for the specified algorithm."


def test_sse_c_together_with_another_method(s3: Any) -> None:
    status, code, message = fails(
        s3.put_object, Bucket=BUCKET, Key="both", Body=b"x", ServerSideEncryption="AES256",
        **KEY.put_args(),
    )  # fmt: skip
    assert (status, code) == (400, "InvalidArgument")
    assert "incompatible with the encryption method specified" in message


def test_sse_c_headers_on_an_object_that_is_not_sse_c(s3: Any) -> None:
    status, code, message = fails(s3.get_object, Bucket=BUCKET, Key="plain", **KEY.get_args())
    assert (status, code, message) == (
        400,
        "InvalidRequest",
        "The encryption parameters are not applicable to this object.",
    )


def test_sse_header_on_get_is_refused(s3: Any) -> None:
    # boto3 has no GetObject parameter for it, so send the raw header.
    def add_header(request: Any, **_: Any) -> None:
        request.headers["x-amz-server-side-encryption"] = "AES256"

    s3.meta.events.register_first("before-sign.s3.GetObject", add_header)
    try:
        status, code, _ = fails(s3.get_object, Bucket=BUCKET, Key="plain")
    finally:
        s3.meta.events.unregister("before-sign.s3.GetObject", add_header)
    assert (status, code) == (400, "InvalidArgument")


def test_copy_from_sse_c_needs_the_source_key(s3: Any) -> None:
    source = {"Bucket": BUCKET, "Key": "ssec"}
    status, code, _ = fails(s3.copy_object, Bucket=BUCKET, Key="copy", CopySource=source)
    assert (status, code) == (400, "InvalidRequest")
    wrong = fails(
        s3.copy_object, Bucket=BUCKET, Key="copy", CopySource=source, **OTHER.copy_source_args()
    )
    assert wrong[:2] == (403, "AccessDenied")


def test_upload_part_must_repeat_the_key(s3: Any) -> None:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="mpu", **KEY.put_args())["UploadId"]
    args = {"Bucket": BUCKET, "Key": "mpu", "UploadId": upload_id, "PartNumber": 1, "Body": b"p"}
    status, code, message = fails(s3.upload_part, **args)
    assert (status, code) == (400, "InvalidRequest")
    assert "Subsequent part requests must include the appropriate encryption parameters" in message
    status, code, message = fails(s3.upload_part, **args, **OTHER.put_args())
    assert (status, code, message) == (
        400,
        "InvalidRequest",
        "The provided encryption parameters did not match the ones used originally.",
    )
    assert s3.upload_part(**args, **KEY.put_args())["SSECustomerKeyMD5"] == KEY.md5


# --- SSE-KMS ----------------------------------------------------------------------------------
def test_disabled_key_fails_writes_and_reads(s3: Any, kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    s3.put_object(Bucket=BUCKET, Key="kms-disabled", Body=b"before", **sse_kms(key_id))
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="kms-mpu", **sse_kms(key_id))[
        "UploadId"
    ]
    kms.disable_key(KeyId=key_id)
    try:
        put = fails(s3.put_object, Bucket=BUCKET, Key="kms-new", Body=b"x", **sse_kms(key_id))
        assert put[:2] == (400, "KMS.DisabledException")
        assert key_id in put[2]
        get = fails(s3.get_object, Bucket=BUCKET, Key="kms-disabled")
        assert get[:2] == (400, "KMS.DisabledException")
        part = fails(
            s3.upload_part, Bucket=BUCKET, Key="kms-mpu", UploadId=upload_id, PartNumber=1,
            Body=b"p",
        )  # fmt: skip
        assert part[:2] == (400, "KMS.DisabledException")
        # HEAD reads no data, so it does not call the KMS (as on AWS).
        assert (
            s3.head_object(Bucket=BUCKET, Key="kms-disabled")["ServerSideEncryption"] == "aws:kms"
        )
    finally:
        kms.enable_key(KeyId=key_id)
    assert s3.get_object(Bucket=BUCKET, Key="kms-disabled")["Body"].read() == b"before"


def test_key_pending_deletion(s3: Any, kms: Any) -> None:
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    s3.put_object(Bucket=BUCKET, Key="kms-deleting", Body=b"x", **sse_kms(key_id))
    kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    status, code, message = fails(s3.get_object, Bucket=BUCKET, Key="kms-deleting")
    assert (status, code) == (400, "KMS.KMSInvalidStateException")
    assert "pending deletion" in message


def test_unknown_key(s3: Any) -> None:
    status, code, _ = fails(
        s3.put_object, Bucket=BUCKET, Key="k", Body=b"x", **sse_kms("alias/does-not-exist")
    )
    assert (status, code) == (400, "KMS.NotFoundException")


def test_malformed_context(s3: Any) -> None:
    args = sse_kms()
    args["SSEKMSEncryptionContext"] = base64.b64encode(b'["not", "a map"]').decode()
    status, code, message = fails(s3.put_object, Bucket=BUCKET, Key="k", Body=b"x", **args)
    assert (status, code) == (400, "InvalidArgument")
    assert "string-string map" in message


def test_context_naming_another_object(s3: Any) -> None:
    other = {"aws:s3:arn": f"arn:aws:s3:::{BUCKET}/someone-else"}
    status, code, _ = fails(
        s3.put_object, Bucket=BUCKET, Key="mine", Body=b"x", **sse_kms(context=other)
    )
    assert (status, code) == (400, "InvalidArgument")
    own = {"aws:s3:arn": f"arn:aws:s3:::{BUCKET}/mine"}
    s3.put_object(Bucket=BUCKET, Key="mine", Body=b"x", **sse_kms(context=own))


def test_kms_headers_without_aws_kms(s3: Any) -> None:
    status, code, _ = fails(
        s3.put_object, Bucket=BUCKET, Key="k", Body=b"x", ServerSideEncryption="AES256",
        SSEKMSKeyId="alias/aws/s3",
    )  # fmt: skip
    assert (status, code) == (400, "InvalidArgument")


def test_stored_data_key_only_decrypts_with_the_object_arn(
    server: RunningServer, s3: Any, kms: Any
) -> None:
    """The encrypted data key S3 keeps is bound to the object's ARN: KMS refuses it under any
    other context (the database row is read directly)."""
    import sqlite3

    s3.put_object(Bucket=BUCKET, Key="bound", Body=b"x", **sse_kms())
    database = server.data_dir / "s3" / "s3.sqlite3"
    with sqlite3.connect(database) as db:
        (envelope,) = db.execute(
            "SELECT envelope FROM objects WHERE bucket = ? AND key = ?", (BUCKET, b"bound")
        ).fetchone()
    stored = json.loads(envelope)
    blob = base64.b64decode(stored["ciphertext"])
    right = {"aws:s3:arn": f"arn:aws:s3:::{BUCKET}/bound"}
    assert len(kms.decrypt(CiphertextBlob=blob, EncryptionContext=right)["Plaintext"]) == 32
    for wrong in ({"aws:s3:arn": f"arn:aws:s3:::{BUCKET}/other"}, {}):
        with pytest.raises(kms.exceptions.InvalidCiphertextException):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=wrong)


# --- transport --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def http_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any]]:
    base = tmp_path_factory.mktemp("s3http")
    strict = start_server(base / "strict", workers=1)
    relaxed = start_server(base / "relaxed", workers=1, extra_args=["--allow-sse-c-over-http"])
    try:
        yield s3_client(strict), s3_client(relaxed)
    finally:
        strict.stop()
        relaxed.stop()


def test_sse_c_over_plain_http(http_servers: tuple[Any, Any]) -> None:
    strict, relaxed = http_servers
    for client in (strict, relaxed):
        client.create_bucket(Bucket="http-bucket")
    status, code, message = fails(
        strict.put_object, Bucket="http-bucket", Key="k", Body=b"x", **KEY.put_args()
    )
    assert (status, code) == (400, "InvalidRequest")
    assert message == (
        "Requests specifying Server Side Encryption with Customer provided keys must be made "
        "over a secure connection."
    )
    # Reads are refused the same way; other modes are fine over HTTP.
    assert fails(strict.get_object, Bucket="http-bucket", Key="k", **KEY.get_args())[1] == (
        "InvalidRequest"
    )
    strict.put_object(Bucket="http-bucket", Key="kms", Body=b"x", **sse_kms())
    # The operator flag allows it for local use.
    relaxed.put_object(Bucket="http-bucket", Key="k", Body=b"over http", **KEY.put_args())
    got = relaxed.get_object(Bucket="http-bucket", Key="k", **KEY.get_args())
    assert got["Body"].read() == b"over http"
