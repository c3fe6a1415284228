"""SSE-C header validation (in S3's order, docs/aws-behaviours.md) and the stored HMAC."""

from __future__ import annotations

import base64
import hashlib
import os

import pytest

from s3_service import sse_c
from s3_service.errors import S3Error

KEY = bytes(range(32))
KEY_B64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
KEY_MD5 = "tP/LI3N87DFaSk0aoqYgzg=="  # base64 MD5 of the 32 key bytes above
P = sse_c.PREFIX


def headers(**values: str) -> dict[str, str]:
    return {P + name.replace("_", "-"): value for name, value in values.items()}


def parse(hdrs: dict[str, str], *, secure: bool = True, other: str | None = None):  # type: ignore[no-untyped-def]
    return sse_c.parse(hdrs, secure=secure, allow_http=False, other_method=other)


def fail(hdrs: dict[str, str], **kwargs: object) -> S3Error:
    with pytest.raises(S3Error) as caught:
        parse(hdrs, **kwargs)  # type: ignore[arg-type]
    return caught.value


def test_valid_trio_gives_the_raw_key() -> None:
    customer = parse(headers(algorithm="AES256", key=KEY_B64, key_MD5=KEY_MD5))
    assert customer is not None
    assert customer.key == KEY
    assert customer.key_md5 == KEY_MD5
    assert KEY_B64 not in repr(customer) and "key=" not in repr(customer)


def test_no_headers_means_no_sse_c() -> None:
    assert parse({}) is None


def test_plain_http_is_refused_first() -> None:
    error = fail(headers(algorithm="AES256", key=KEY_B64, key_MD5=KEY_MD5), secure=False)
    assert (error.status, error.code) == (400, "InvalidRequest")
    assert "must be made over a secure connection" in error.message


def test_plain_http_allowed_by_the_operator_flag() -> None:
    hdrs = headers(algorithm="AES256", key=KEY_B64, key_MD5=KEY_MD5)
    assert sse_c.parse(hdrs, secure=False, allow_http=True) is not None


@pytest.mark.parametrize(
    ("hdrs", "other", "status", "code", "text"),
    [
        (
            headers(algorithm="AES256", key=KEY_B64, key_MD5=KEY_MD5),
            "AES256",
            400,
            "InvalidArgument",
            "incompatible with the encryption method specified",
        ),
        (
            headers(algorithm="AES128", key=KEY_B64, key_MD5=KEY_MD5),
            None,
            400,
            "InvalidEncryptionAlgorithmError",
            "Supported value: AES256.",
        ),
        (
            headers(key=KEY_B64, key_MD5=KEY_MD5),
            None,
            400,
            "InvalidArgument",
            "must provide a valid encryption algorithm.",
        ),
        (
            headers(algorithm="AES256"),
            None,
            400,
            "InvalidArgument",
            "must provide an appropriate secret key.",
        ),
        (
            headers(algorithm="AES256", key=KEY_B64, key_MD5=base64.b64encode(b"0" * 16).decode()),
            None,
            400,
            "InvalidArgument",
            "The calculated MD5 hash of the key did not match the hash that was provided.",
        ),
    ],
)
def test_error_table(
    hdrs: dict[str, str], other: str | None, status: int, code: str, text: str
) -> None:
    error = fail(hdrs, other=other)
    assert (error.status, error.code) == (status, code)
    assert text in error.message


def test_md5_mismatch_is_checked_before_the_key_length() -> None:
    short = base64.b64encode(b"k" * 16).decode()
    wrong_md5 = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    assert "MD5" in fail(headers(algorithm="AES256", key=short, key_MD5=wrong_md5)).message
    right_md5 = base64.b64encode(hashlib.md5(b"k" * 16).digest()).decode()
    error = fail(headers(algorithm="AES256", key=short, key_MD5=right_md5))
    assert error.message == "The secret key was invalid for the specified algorithm."


def test_copy_source_prefix_is_read_separately() -> None:
    copy = {
        sse_c.COPY_SOURCE_PREFIX + "algorithm": "AES256",
        sse_c.COPY_SOURCE_PREFIX + "key": KEY_B64,
        sse_c.COPY_SOURCE_PREFIX + "key-MD5": KEY_MD5,
    }
    assert sse_c.parse(copy, secure=True, allow_http=False) is None
    found = sse_c.parse(copy, sse_c.COPY_SOURCE_PREFIX, secure=True, allow_http=False)
    assert found is not None and found.key == KEY


def test_fingerprint_matches_only_the_same_key_and_secret() -> None:
    secret = os.urandom(32)
    salt, mac = sse_c.fingerprint(KEY, secret)
    assert sse_c.matches(KEY, salt, mac, secret)
    assert not sse_c.matches(bytes(32), salt, mac, secret)
    assert not sse_c.matches(KEY, salt, mac, os.urandom(32))
    assert KEY not in salt + mac


def test_fingerprints_are_salted() -> None:
    secret = os.urandom(32)
    assert sse_c.fingerprint(KEY, secret) != sse_c.fingerprint(KEY, secret)
