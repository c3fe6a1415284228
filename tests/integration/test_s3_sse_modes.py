"""Each server-side encryption mode end to end against a real ``mock-kms serve --tls``:
put, get, ranged get, head, copy (every source/destination pair, SSE-C to SSE-KMS included)
and multipart, driven by boto3 with the SSE helpers of :mod:`clients.sse`."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from clients.sse import CustomerKey, sse_kms, sse_s3
from tests.support.s3 import kms_client, s3_client
from tests.support.server import RunningServer, running_server

BUCKET = "sse-modes"
SIZE = 200_000  # several 64 KiB chunks
DATA = os.urandom(SIZE)
CUSTOMER = CustomerKey.generate()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(
        tmp_path_factory.mktemp("s3modes") / "data", extra_args=["--tls"]
    ) as running:
        yield running


@pytest.fixture(scope="module")
def s3(server: RunningServer) -> Any:
    client = s3_client(server)
    client.create_bucket(Bucket=BUCKET)
    return client


@pytest.fixture(scope="module")
def kms(server: RunningServer) -> Any:
    return kms_client(server)


@pytest.fixture(scope="module")
def key_arn(kms: Any) -> str:
    arn: str = kms.create_key(Description="s3 tests")["KeyMetadata"]["Arn"]
    kms.create_alias(AliasName="alias/s3-tests", TargetKeyId=arn)
    return arn


@dataclass(frozen=True)
class Mode:
    """One way of encrypting: what to send on writes and reads, and what S3 echoes."""

    name: str
    write: Callable[[str], dict[str, Any]]
    read: dict[str, Any] = field(default_factory=dict)
    copy_source: dict[str, Any] = field(default_factory=dict)

    def check(self, response: dict[str, Any], key_arn: str, kms: Any) -> None:
        if self.name in ("sse-s3", "bucket-default"):
            assert response["ServerSideEncryption"] == "AES256"
            assert "SSEKMSKeyId" not in response
        elif self.name.startswith("sse-kms"):
            assert response["ServerSideEncryption"] == "aws:kms"
            expected = (
                kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"]
                if self.name == "sse-kms-aws-managed"
                else key_arn
            )
            assert response["SSEKMSKeyId"] == expected
            assert response.get("BucketKeyEnabled", False) is (self.name == "sse-kms-bucket-key")
        else:
            assert "ServerSideEncryption" not in response
            assert response["SSECustomerAlgorithm"] == "AES256"
            assert response["SSECustomerKeyMD5"] == CUSTOMER.md5


MODES = [
    Mode("bucket-default", lambda arn: {}),
    Mode("sse-s3", lambda arn: sse_s3()),
    Mode("sse-kms", lambda arn: sse_kms(arn, context={"purpose": "tests"})),
    Mode("sse-kms-alias", lambda arn: sse_kms("alias/s3-tests")),
    Mode("sse-kms-aws-managed", lambda arn: sse_kms()),
    Mode("sse-kms-bucket-key", lambda arn: sse_kms(arn, bucket_key=True)),
    Mode(
        "sse-c",
        lambda arn: CUSTOMER.put_args(),
        CUSTOMER.get_args(),
        CUSTOMER.copy_source_args(),
    ),
]
IDS = [m.name for m in MODES]


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


@pytest.mark.parametrize("mode", MODES, ids=IDS)
def test_put_get_range_head(mode: Mode, s3: Any, kms: Any, key_arn: str) -> None:
    key = f"objects/{mode.name}"
    put = s3.put_object(Bucket=BUCKET, Key=key, Body=DATA, **mode.write(key_arn))
    mode.check(put, key_arn, kms)
    etag = put["ETag"].strip('"')
    # ETag is the data's MD5 only for SSE-S3 (docs/aws-behaviours.md, "S3 endpoint").
    assert (etag == md5_hex(DATA)) is (mode.name in ("sse-s3", "bucket-default"))

    got = s3.get_object(Bucket=BUCKET, Key=key, **mode.read)
    assert got["Body"].read() == DATA
    mode.check(got, key_arn, kms)
    assert got["ETag"] == put["ETag"]
    # The CRC32 botocore sent with the upload comes back, and botocore checked the body.
    assert got["ChecksumCRC32"] == put["ChecksumCRC32"]

    ranged = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=65000-140000", **mode.read)
    assert ranged["ResponseMetadata"]["HTTPStatusCode"] == 206
    assert ranged["ContentRange"] == f"bytes 65000-140000/{SIZE}"
    assert ranged["Body"].read() == DATA[65000:140001]
    assert "ChecksumCRC32" not in ranged  # a whole-object checksum does not fit a range
    suffix = s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-10", **mode.read)
    assert suffix["Body"].read() == DATA[-10:]

    head = s3.head_object(Bucket=BUCKET, Key=key, **mode.read)
    assert head["ContentLength"] == SIZE
    mode.check(head, key_arn, kms)


def test_sse_kms_put_echoes_the_full_context(s3: Any, key_arn: str) -> None:
    import base64
    import json

    put = s3.put_object(
        Bucket=BUCKET, Key="ctx", Body=b"x", **sse_kms(key_arn, context={"team": "a"})
    )
    context = json.loads(base64.b64decode(put["SSEKMSEncryptionContext"]))
    assert context == {"team": "a", "aws:s3:arn": f"arn:aws:s3:::{BUCKET}/ctx"}
    head = s3.head_object(Bucket=BUCKET, Key="ctx")
    assert "SSEKMSEncryptionContext" not in head  # GET and HEAD never return it


@pytest.mark.parametrize("source", [MODES[1], MODES[2], MODES[-1]], ids=["s3", "kms", "c"])
@pytest.mark.parametrize("target", [MODES[1], MODES[2], MODES[-1]], ids=["s3", "kms", "c"])
def test_copy_between_modes(source: Mode, target: Mode, s3: Any, kms: Any, key_arn: str) -> None:
    source_key = f"copy/{source.name}-to-{target.name}/source"
    target_key = f"copy/{source.name}-to-{target.name}/target"
    s3.put_object(Bucket=BUCKET, Key=source_key, Body=DATA, **source.write(key_arn))
    copied = s3.copy_object(
        Bucket=BUCKET,
        Key=target_key,
        CopySource={"Bucket": BUCKET, "Key": source_key},
        **source.copy_source,
        **target.write(key_arn),
    )
    target.check(copied, key_arn, kms)
    got = s3.get_object(Bucket=BUCKET, Key=target_key, **target.read)
    assert got["Body"].read() == DATA
    target.check(got, key_arn, kms)


def test_copy_onto_itself_needs_a_change(s3: Any, key_arn: str) -> None:
    s3.put_object(Bucket=BUCKET, Key="self", Body=b"same")
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.copy_object(Bucket=BUCKET, Key="self", CopySource={"Bucket": BUCKET, "Key": "self"})
    assert caught.value.response["Error"]["Code"] == "InvalidRequest"
    # Re-encrypting in place is a change: SSE-S3 -> SSE-KMS.
    s3.copy_object(
        Bucket=BUCKET, Key="self", CopySource={"Bucket": BUCKET, "Key": "self"}, **sse_kms(key_arn)
    )
    assert s3.head_object(Bucket=BUCKET, Key="self")["ServerSideEncryption"] == "aws:kms"
    assert s3.get_object(Bucket=BUCKET, Key="self")["Body"].read() == b"same"


@pytest.mark.parametrize("mode", [MODES[1], MODES[2], MODES[-1]], ids=["s3", "kms", "c"])
def test_multipart(mode: Mode, s3: Any, kms: Any, key_arn: str) -> None:
    key = f"multipart/{mode.name}"
    parts_data = [os.urandom(5 * 1024 * 1024), os.urandom(5 * 1024 * 1024 + 7), os.urandom(999)]
    created = s3.create_multipart_upload(Bucket=BUCKET, Key=key, **mode.write(key_arn))
    mode.check(created, key_arn, kms)
    upload_id = created["UploadId"]
    part_args = CUSTOMER.put_args() if mode.name == "sse-c" else {}
    parts = []
    for number, data in enumerate(parts_data, start=1):
        response = s3.upload_part(
            Bucket=BUCKET, Key=key, UploadId=upload_id, PartNumber=number, Body=data, **part_args
        )
        mode.check(response, key_arn, kms)
        parts.append({"PartNumber": number, "ETag": response["ETag"]})
    listed = s3.list_parts(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        **(CUSTOMER.encoded_args() if mode.name == "sse-c" else {}),
    )
    assert [p["Size"] for p in listed["Parts"]] == [len(d) for d in parts_data]
    done = s3.complete_multipart_upload(
        Bucket=BUCKET,
        Key=key,
        UploadId=upload_id,
        MultipartUpload={"Parts": parts},
        **part_args,
    )
    assert done["ETag"].strip('"').endswith("-3")
    whole = b"".join(parts_data)
    assert s3.get_object(Bucket=BUCKET, Key=key, **mode.read)["Body"].read() == whole
    boundary = len(parts_data[0])
    across = s3.get_object(
        Bucket=BUCKET, Key=key, Range=f"bytes={boundary - 5}-{boundary + 4}", **mode.read
    )
    assert across["Body"].read() == whole[boundary - 5 : boundary + 5]
    head = s3.head_object(Bucket=BUCKET, Key=key, **mode.read)
    assert head["ContentLength"] == len(whole)
    mode.check(head, key_arn, kms)


def test_multipart_part_too_small_and_wrong_etag(s3: Any) -> None:
    upload_id = s3.create_multipart_upload(Bucket=BUCKET, Key="small-parts")["UploadId"]
    etags = [
        s3.upload_part(
            Bucket=BUCKET, Key="small-parts", UploadId=upload_id, PartNumber=n, Body=b"tiny"
        )["ETag"]
        for n in (1, 2)
    ]
    with pytest.raises(s3.exceptions.ClientError) as small:
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="small-parts",
            UploadId=upload_id,
            MultipartUpload={
                "Parts": [{"PartNumber": n, "ETag": e} for n, e in zip((1, 2), etags, strict=True)]
            },
        )
    assert small.value.response["Error"]["Code"] == "EntityTooSmall"
    with pytest.raises(s3.exceptions.ClientError) as wrong:
        s3.complete_multipart_upload(
            Bucket=BUCKET,
            Key="small-parts",
            UploadId=upload_id,
            MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"' + "0" * 32 + '"'}]},
        )
    assert wrong.value.response["Error"]["Code"] == "InvalidPart"
    s3.abort_multipart_upload(Bucket=BUCKET, Key="small-parts", UploadId=upload_id)
    with pytest.raises(s3.exceptions.NoSuchUpload):
        s3.list_parts(Bucket=BUCKET, Key="small-parts", UploadId=upload_id)


def test_bucket_default_encryption(s3: Any, key_arn: str, kms: Any) -> None:
    bucket = "sse-default-kms"
    s3.create_bucket(Bucket=bucket)
    default = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]
    assert default["Rules"][0]["ApplyServerSideEncryptionByDefault"] == {"SSEAlgorithm": "AES256"}
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {
                        "SSEAlgorithm": "aws:kms",
                        "KMSMasterKeyID": key_arn,
                    },
                    "BucketKeyEnabled": True,
                }
            ]
        },
    )
    rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
    assert rules[0]["ApplyServerSideEncryptionByDefault"]["KMSMasterKeyID"] == key_arn
    assert rules[0]["BucketKeyEnabled"] is True
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"default kms")
    assert (put["ServerSideEncryption"], put["SSEKMSKeyId"]) == ("aws:kms", key_arn)
    assert put["BucketKeyEnabled"] is True
    explicit = s3.put_object(Bucket=bucket, Key="k2", Body=b"x", **sse_s3())
    assert explicit["ServerSideEncryption"] == "AES256"
    s3.delete_bucket_encryption(Bucket=bucket)
    assert s3.put_object(Bucket=bucket, Key="k3", Body=b"x")["ServerSideEncryption"] == "AES256"
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"default kms"


def test_blocked_sse_c(s3: Any) -> None:
    bucket = "sse-c-blocked"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="before", Body=b"old", **CUSTOMER.put_args())
    s3.put_bucket_encryption(
        Bucket=bucket,
        ServerSideEncryptionConfiguration={
            "Rules": [
                {
                    "ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"},
                    "BlockedEncryptionTypes": {"EncryptionType": ["SSE-C"]},
                }
            ]
        },
    )
    with pytest.raises(s3.exceptions.ClientError) as caught:
        s3.put_object(Bucket=bucket, Key="after", Body=b"new", **CUSTOMER.put_args())
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403
    assert caught.value.response["Error"]["Code"] == "AccessDenied"
    # Existing SSE-C objects stay readable.
    got = s3.get_object(Bucket=bucket, Key="before", **CUSTOMER.get_args())
    assert got["Body"].read() == b"old"


def test_saved_customer_key_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "key.bin"
    CUSTOMER.save(path)
    assert CustomerKey.from_file(path) == CUSTOMER
    assert CustomerKey.from_base64(CUSTOMER.base64) == CUSTOMER
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(FileExistsError):
        CUSTOMER.save(path)
    with pytest.raises(ValueError):
        CustomerKey(b"short")
