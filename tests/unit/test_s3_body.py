"""Request bodies: plain and aws-chunked framing (as botocore really frames it), and every
digest check S3 makes."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import zlib

import pytest
from botocore.httpchecksum import AwsChunkedWrapper, Crc32Checksum, Sha256Checksum

from s3_service.body import RequestBody
from s3_service.errors import S3Error

DATA = os.urandom(3 * 1024 * 1024 + 123)


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def crc32(data: bytes) -> str:
    return b64(zlib.crc32(data).to_bytes(4, "big"))


def consume(body: RequestBody) -> bytes:
    out = b"".join(body.pieces())
    body.verify()
    return out


def chunked(
    data: bytes, checksum_cls: type = Crc32Checksum, name: str = "x-amz-checksum-crc32"
) -> bytes:
    wrapper = AwsChunkedWrapper(io.BytesIO(data), checksum_cls=checksum_cls, checksum_name=name)
    return bytes(wrapper.read())


def test_plain_body_with_md5_and_sha256() -> None:
    headers = {
        "Content-Length": str(len(DATA)),
        "Content-MD5": b64(hashlib.md5(DATA).digest()),
        "x-amz-content-sha256": hashlib.sha256(DATA).hexdigest(),
    }
    body = RequestBody(io.BytesIO(DATA), headers, max_size=10**9)
    assert consume(body) == DATA
    assert body.md5 == hashlib.md5(DATA).digest()


def test_pieces_are_bounded() -> None:
    body = RequestBody(io.BytesIO(DATA), {"Content-Length": str(len(DATA))}, max_size=10**9)
    assert max(len(piece) for piece in body.pieces()) <= 1024 * 1024


def test_botocore_aws_chunked_with_crc32_trailer() -> None:
    framed = chunked(DATA)
    headers = {
        "Transfer-Encoding": "chunked",
        "Content-Encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": str(len(DATA)),
        "x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER",
    }
    body = RequestBody(io.BytesIO(framed), headers, max_size=10**9)
    assert consume(body) == DATA
    assert body.checksum == {"crc32": crc32(DATA)}


def test_aws_chunked_sha256_trailer_mismatch_is_bad_digest() -> None:
    framed = chunked(DATA, Sha256Checksum, "x-amz-checksum-sha256")
    tampered = framed.replace(DATA[:100], bytes(100), 1)
    headers = {
        "Content-Length": str(len(tampered)),
        "Content-Encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-sha256",
    }
    body = RequestBody(io.BytesIO(tampered), headers, max_size=10**9)
    b"".join(body.pieces())
    with pytest.raises(S3Error) as caught:
        body.verify()
    assert caught.value.code == "BadDigest"


def test_signed_chunk_headers_are_parsed() -> None:
    framed = (
        b"5;chunk-signature=" + b"0" * 64 + b"\r\nhello\r\n"
        b"0;chunk-signature=" + b"0" * 64 + b"\r\n\r\n"
    )
    headers = {
        "Content-Length": str(len(framed)),
        "x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "x-amz-decoded-content-length": "5",
    }
    assert consume(RequestBody(io.BytesIO(framed), headers, max_size=100)) == b"hello"


def test_decoded_length_mismatch_is_incomplete_body() -> None:
    framed = chunked(b"abc")
    headers = {
        "Content-Length": str(len(framed)),
        "Content-Encoding": "aws-chunked",
        "x-amz-trailer": "x-amz-checksum-crc32",
        "x-amz-decoded-content-length": "4",
    }
    body = RequestBody(io.BytesIO(framed), headers, max_size=100)
    b"".join(body.pieces())
    with pytest.raises(S3Error) as caught:
        body.verify()
    assert caught.value.code == "IncompleteBody"


@pytest.mark.parametrize(
    ("header", "value", "code"),
    [
        ("Content-MD5", b64(hashlib.md5(b"other").digest()), "BadDigest"),
        ("x-amz-content-sha256", hashlib.sha256(b"other").hexdigest(), "XAmzContentSHA256Mismatch"),
        ("x-amz-checksum-crc32", crc32(b"other"), "BadDigest"),
    ],
)
def test_digest_mismatches(header: str, value: str, code: str) -> None:
    body = RequestBody(io.BytesIO(b"data"), {"Content-Length": "4", header: value}, max_size=100)
    assert b"".join(body.pieces()) == b"data"
    with pytest.raises(S3Error) as caught:
        body.verify()
    assert caught.value.code == code


def test_malformed_content_md5_is_refused_before_reading() -> None:
    with pytest.raises(S3Error) as caught:
        RequestBody(io.BytesIO(b""), {"Content-Length": "0", "Content-MD5": "nope"}, max_size=1)
    assert caught.value.code == "InvalidDigest"


def test_short_body_is_incomplete() -> None:
    body = RequestBody(io.BytesIO(b"abc"), {"Content-Length": "10"}, max_size=100)
    with pytest.raises(S3Error) as caught:
        b"".join(body.pieces())
    assert caught.value.code == "IncompleteBody"


def test_missing_length_and_oversize() -> None:
    with pytest.raises(S3Error) as missing:
        RequestBody(io.BytesIO(b""), {}, max_size=1)
    assert (missing.value.status, missing.value.code) == (411, "MissingContentLength")
    with pytest.raises(S3Error) as large:
        RequestBody(io.BytesIO(b""), {"Content-Length": "11"}, max_size=10)
    assert large.value.code == "EntityTooLarge"


def test_unverifiable_checksum_algorithm_is_not_silently_accepted() -> None:
    with pytest.raises(S3Error) as caught:
        RequestBody(
            io.BytesIO(b"x"),
            {"Content-Length": "1", "x-amz-checksum-crc32c": "AAAAAA=="},
            max_size=1,
        )
    assert (caught.value.status, caught.value.code) == (501, "NotImplemented")
