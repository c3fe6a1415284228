"""S3 SigV4 checks against AWS's own documented example (the chunked PUT of
https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-streaming.html: seed and chunk
signatures for 66560 bytes of ``a`` in 64 KiB chunks)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from kms_service.wire.auth.credentials import CredentialStore
from s3_service.auth import S3Authenticator
from s3_service.body import RequestBody
from s3_service.errors import S3Error
from s3_service.wire import S3Request, raw_target

SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
CHUNK_SIGNATURES = (
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
)
WHEN = datetime(2013, 5, 24, 0, 1, tzinfo=UTC)


def authenticator(tmp_path: Path, when: datetime = WHEN) -> S3Authenticator:
    path = tmp_path / "credentials"
    path.write_text(
        "[example]\naws_access_key_id = AKIAIOSFODNN7EXAMPLE\n"
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    )
    return S3Authenticator("sigv4", CredentialStore.load(path, "111122223333"), lambda: when)


def body(signatures: tuple[str, ...] = CHUNK_SIGNATURES) -> bytes:
    return (
        f"10000;chunk-signature={signatures[0]}\r\n".encode()
        + b"a" * 65536
        + b"\r\n"
        + f"400;chunk-signature={signatures[1]}\r\n".encode()
        + b"a" * 1024
        + b"\r\n"
        + f"0;chunk-signature={signatures[2]}\r\n\r\n".encode()
    )


def request(signature: str = SEED, payload: bytes | None = None) -> S3Request:
    data = body() if payload is None else payload
    environ = {
        "REQUEST_METHOD": "PUT",
        "RAW_URI": "/examplebucket/chunkObject.txt",
        "PATH_INFO": "/examplebucket/chunkObject.txt",
        "QUERY_STRING": "",
        "wsgi.url_scheme": "https",
        "wsgi.input": io.BytesIO(data),
        "HTTP_HOST": "s3.amazonaws.com",
        "HTTP_X_AMZ_DATE": "20130524T000000Z",
        "HTTP_X_AMZ_STORAGE_CLASS": "REDUCED_REDUNDANCY",
        "HTTP_AUTHORIZATION": (
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
            "aws4_request,SignedHeaders=content-encoding;content-length;host;"
            "x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,"
            f"Signature={signature}"
        ),
        "HTTP_X_AMZ_CONTENT_SHA256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD",
        "HTTP_CONTENT_ENCODING": "aws-chunked",
        "HTTP_X_AMZ_DECODED_CONTENT_LENGTH": "66560",
        "CONTENT_LENGTH": "66824",
    }
    return S3Request.from_environ(environ, "req", "111122223333")


def read(auth: S3Authenticator, s3_request: S3Request) -> bytes:
    verified = auth.authenticate(s3_request, *raw_target(s3_request.environ))
    assert verified.caller.access_key_id == "AKIAIOSFODNN7EXAMPLE"
    assert verified.caller.signed_region == "us-east-1"
    reader = RequestBody(
        s3_request.stream, s3_request.headers, max_size=10**6, chunk_check=verified.chunks
    )
    data = b"".join(reader.pieces())
    reader.verify()
    return data


def test_awss_documented_chunked_upload_verifies(tmp_path: Path) -> None:
    assert read(authenticator(tmp_path), request()) == b"a" * 66560


def test_a_wrong_chunk_signature_is_refused(tmp_path: Path) -> None:
    tampered = (CHUNK_SIGNATURES[0], CHUNK_SIGNATURES[2], CHUNK_SIGNATURES[1])
    with pytest.raises(S3Error) as caught:
        read(authenticator(tmp_path), request(payload=body(tampered)))
    assert (caught.value.status, caught.value.code) == (403, "SignatureDoesNotMatch")


def test_a_wrong_seed_signature_is_refused(tmp_path: Path) -> None:
    with pytest.raises(S3Error) as caught:
        read(authenticator(tmp_path), request(signature="0" * 64))
    assert caught.value.code == "SignatureDoesNotMatch"
    assert caught.value.message.startswith("The request signature we calculated does not match")


def test_skew_is_checked_first(tmp_path: Path) -> None:
    late = datetime(2013, 5, 24, 0, 16, tzinfo=UTC)
    with pytest.raises(S3Error) as caught:
        read(authenticator(tmp_path, late), request())
    assert (caught.value.status, caught.value.code) == (403, "RequestTimeTooSkewed")
