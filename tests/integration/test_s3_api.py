"""The S3 API beside the KMS on one port: buckets, objects, listings, conditional reads,
S3's XML errors, and the routing that keeps KMS requests working exactly as before."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.s3 import fails, kms_client, s3_client
from tests.support.server import RunningServer, running_server, start_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("s3api") / "data") as running:
        yield running


@pytest.fixture(scope="module")
def s3(server: RunningServer) -> Any:
    return s3_client(server)


def test_kms_and_s3_share_the_port(server: RunningServer, s3: Any) -> None:
    kms = kms_client(server)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kms still works")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kms still works"
    s3.create_bucket(Bucket="shared-port")
    assert "shared-port" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    with urllib.request.urlopen(server.endpoint + "/healthz", timeout=5) as response:
        assert response.status == 200


def test_kms_errors_keep_their_json_shape(server: RunningServer) -> None:
    request = urllib.request.Request(
        server.endpoint + "/",
        data=b"{}",
        method="POST",
        headers={"X-Amz-Target": "TrentService.NoSuchOperation"},
    )
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(request, timeout=5)
    assert caught.value.headers["X-Amzn-ErrorType"] == "UnknownOperationException"
    assert caught.value.headers["Content-Type"] == "application/x-amz-json-1.1"


def test_bucket_lifecycle_and_errors(s3: Any) -> None:
    s3.create_bucket(Bucket="lifecycle")
    assert (
        s3.head_bucket(Bucket="lifecycle")["ResponseMetadata"]["HTTPHeaders"]["x-amz-bucket-region"]
        == "us-east-1"
    )
    assert fails(s3.create_bucket, Bucket="Not_Valid")[:2] == (400, "InvalidBucketName")
    other_account = s3_client_for_account(s3, "444455556666")
    assert fails(other_account.create_bucket, Bucket="lifecycle")[:2] == (
        409,
        "BucketAlreadyExists",
    )
    s3.put_object(Bucket="lifecycle", Key="k", Body=b"x")
    assert fails(s3.delete_bucket, Bucket="lifecycle")[:2] == (409, "BucketNotEmpty")
    s3.delete_object(Bucket="lifecycle", Key="k")
    s3.delete_bucket(Bucket="lifecycle")
    status, code, message = fails(s3.list_objects_v2, Bucket="lifecycle")
    assert (status, code, message) == (404, "NoSuchBucket", "The specified bucket does not exist")
    assert fails(s3.head_bucket, Bucket="lifecycle")[0] == 404


def s3_client_for_account(s3: Any, account: str) -> Any:
    import boto3

    return boto3.client(
        "s3",
        endpoint_url=s3.meta.endpoint_url,
        region_name="us-east-1",
        aws_access_key_id=account,
        aws_secret_access_key="x",
    )


def test_regional_bucket(s3: Any) -> None:
    s3.create_bucket(
        Bucket="in-frankfurt", CreateBucketConfiguration={"LocationConstraint": "eu-central-1"}
    )
    assert s3.get_bucket_location(Bucket="in-frankfurt")["LocationConstraint"] == "eu-central-1"
    assert (
        fails(
            s3.create_bucket,
            Bucket="in-frankfurt",
            CreateBucketConfiguration={"LocationConstraint": "eu-central-1"},
        )[1]
        == "BucketAlreadyOwnedByYou"
    )


def test_object_metadata_round_trip(s3: Any) -> None:
    s3.create_bucket(Bucket="meta")
    s3.put_object(
        Bucket="meta",
        Key="dir/file name+plus%.txt",
        Body=b"hello",
        ContentType="text/plain",
        CacheControl="max-age=60",
        Metadata={"Owner": "team-a"},
    )
    head = s3.head_object(Bucket="meta", Key="dir/file name+plus%.txt")
    assert head["ContentType"] == "text/plain"
    assert head["CacheControl"] == "max-age=60"
    assert head["Metadata"] == {"owner": "team-a"}
    assert head["ContentLength"] == 5
    got = s3.get_object(
        Bucket="meta", Key="dir/file name+plus%.txt", ResponseContentType="application/x-test"
    )
    assert got["ContentType"] == "application/x-test"
    assert got["Body"].read() == b"hello"
    status, code, _ = fails(s3.get_object, Bucket="meta", Key="missing")
    assert (status, code) == (404, "NoSuchKey")


def test_listing_v2_prefix_delimiter_and_paging(s3: Any) -> None:
    s3.create_bucket(Bucket="listing")
    keys = ["a.txt", "photos/2024/1.jpg", "photos/2024/2.jpg", "photos/x.jpg", "z", "é"]
    keys += [f"many/{i:03d}" for i in range(25)]
    for key in keys:
        s3.put_object(Bucket="listing", Key=key, Body=b"x")
    top = s3.list_objects_v2(Bucket="listing", Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["a.txt", "z", "é"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["many/", "photos/"]
    nested = s3.list_objects_v2(Bucket="listing", Prefix="photos/", Delimiter="/")
    assert [o["Key"] for o in nested["Contents"]] == ["photos/x.jpg"]
    assert [p["Prefix"] for p in nested["CommonPrefixes"]] == ["photos/2024/"]
    paginator = s3.get_paginator("list_objects_v2")
    pages = list(paginator.paginate(Bucket="listing", PaginationConfig={"PageSize": 7}))
    assert len(pages) == 5
    listed = [o["Key"] for page in pages for o in page.get("Contents", [])]
    assert listed == sorted(keys, key=lambda k: k.encode())
    # Paging through common prefixes does not repeat them.
    rolled = list(
        paginator.paginate(Bucket="listing", Delimiter="/", PaginationConfig={"PageSize": 1})
    )
    prefixes = [p["Prefix"] for page in rolled for p in page.get("CommonPrefixes", [])]
    assert prefixes == ["many/", "photos/"]
    after = s3.list_objects_v2(Bucket="listing", StartAfter="photos/x.jpg")
    assert [o["Key"] for o in after["Contents"]] == ["z", "é"]
    v1 = s3.list_objects(Bucket="listing", Prefix="many/", MaxKeys=10)
    assert v1["IsTruncated"] is True and len(v1["Contents"]) == 10


def test_delete_objects(s3: Any) -> None:
    s3.create_bucket(Bucket="bulk")
    for key in ("a", "b", "c"):
        s3.put_object(Bucket="bulk", Key=key, Body=b"x")
    result = s3.delete_objects(
        Bucket="bulk", Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "missing"}]}
    )
    assert sorted(d["Key"] for d in result["Deleted"]) == ["a", "b", "missing"]
    assert [o["Key"] for o in s3.list_objects_v2(Bucket="bulk")["Contents"]] == ["c"]


def test_conditional_reads(s3: Any) -> None:
    s3.create_bucket(Bucket="conditions")
    etag = s3.put_object(Bucket="conditions", Key="k", Body=b"v1")["ETag"]
    assert s3.get_object(Bucket="conditions", Key="k", IfMatch=etag)["Body"].read() == b"v1"
    assert fails(s3.get_object, Bucket="conditions", Key="k", IfMatch='"nope"')[:2] == (
        412,
        "PreconditionFailed",
    )
    assert fails(s3.get_object, Bucket="conditions", Key="k", IfNoneMatch=etag)[0] == 304
    assert fails(s3.put_object, Bucket="conditions", Key="k", Body=b"v2", IfNoneMatch="*")[:2] == (
        412,
        "PreconditionFailed",
    )
    assert s3.get_object(Bucket="conditions", Key="k")["Body"].read() == b"v1"


def test_unimplemented_subresources_say_so(s3: Any) -> None:
    s3.create_bucket(Bucket="subresources")
    status, code, message = fails(s3.get_bucket_versioning, Bucket="subresources")
    assert (status, code) == (501, "NotImplemented")
    assert "versioning" in message


def test_xml_error_body(server: RunningServer) -> None:
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(server.endpoint + "/no-such-bucket-here/key", timeout=5)
    body = caught.value.read().decode()
    assert caught.value.code == 404
    assert caught.value.headers["Content-Type"] == "application/xml"
    assert "<Code>NoSuchBucket</Code>" in body
    assert "<BucketName>no-such-bucket-here</BucketName>" in body
    assert caught.value.headers["x-amz-request-id"] in body


def test_no_s3_serves_only_the_kms(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_server(
        tmp_path_factory.mktemp("nos3") / "data", workers=1, extra_args=["--no-s3"]
    )
    try:
        with pytest.raises(urllib.error.HTTPError) as caught:
            urllib.request.urlopen(server.endpoint + "/some-bucket", timeout=5)
        assert caught.value.headers["X-Amzn-ErrorType"] == "UnknownOperationException"
        kms = kms_client(server)
        assert kms.create_key()["KeyMetadata"]["Enabled"] is True
        assert not (server.data_dir / "s3").exists()
    finally:
        server.stop()


def test_presigned_urls(s3: Any) -> None:
    s3.create_bucket(Bucket="presigned")
    upload = s3.generate_presigned_url(
        "put_object", Params={"Bucket": "presigned", "Key": "k"}, ExpiresIn=60
    )
    request = urllib.request.Request(upload, data=b"via presigned url", method="PUT")
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200
    download = s3.generate_presigned_url(
        "get_object",
        Params={"Bucket": "presigned", "Key": "k", "ResponseContentDisposition": "attachment"},
        ExpiresIn=60,
    )
    with urllib.request.urlopen(download, timeout=5) as response:
        assert response.read() == b"via presigned url"
        assert response.headers["Content-Disposition"] == "attachment"


def test_content_md5_mismatch_keeps_the_old_object(s3: Any) -> None:
    import base64
    import hashlib

    s3.create_bucket(Bucket="digests")
    s3.put_object(Bucket="digests", Key="k", Body=b"original")
    wrong = base64.b64encode(hashlib.md5(b"something else").digest()).decode()
    status, code, _ = fails(
        s3.put_object, Bucket="digests", Key="k", Body=b"replacement", ContentMD5=wrong
    )
    assert (status, code) == (400, "BadDigest")
    assert s3.get_object(Bucket="digests", Key="k")["Body"].read() == b"original"
