"""SSE-C: the customer's key arrives with each request, is used, and is forgotten.

Only a randomly salted HMAC of the key is stored, keyed by a secret derived from the S3 master
key (:attr:`s3_service.sse_s3.SseS3Keys.hmac_secret`); later requests are checked against it
in constant time. The headers are validated in S3's order (docs/aws-behaviours.md, "S3
endpoint"), so a request with several faults gets the error AWS would give first.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
from dataclasses import dataclass, field
from typing import Protocol

from s3_service import errors

PREFIX = "x-amz-server-side-encryption-customer-"
COPY_SOURCE_PREFIX = "x-amz-copy-source-server-side-encryption-customer-"
ALGORITHM = "AES256"
KEY_SIZE = 32
SALT_SIZE = 16


class HeaderLookup(Protocol):
    def get(self, key: str) -> str | None: ...


@dataclass(frozen=True)
class CustomerKey:
    """A validated SSE-C key from one request: the 32 raw bytes and the MD5 the client sent
    (echoed back in responses). The key is kept out of ``repr`` so it never reaches a log."""

    key: bytes = field(repr=False)
    key_md5: str


def present(headers: HeaderLookup, prefix: str = PREFIX) -> bool:
    """Whether the request carries any of the three headers under ``prefix``."""
    return any(headers.get(prefix + name) is not None for name in ("algorithm", "key", "key-MD5"))


def parse(
    headers: HeaderLookup,
    prefix: str = PREFIX,
    *,
    secure: bool,
    allow_http: bool,
    other_method: str | None = None,
) -> CustomerKey | None:
    """The SSE-C key named by the headers under ``prefix``, or None when none are present.

    ``other_method`` is the request's ``x-amz-server-side-encryption`` value, which SSE-C
    excludes. Raises the :class:`~s3_service.errors.S3Error` AWS answers: plain HTTP
    (unless ``allow_http``), another method, a bad algorithm, a missing part, an MD5 that
    does not match (checked before the length), a key that is not 32 bytes.
    """
    algorithm = headers.get(prefix + "algorithm")
    encoded_key = headers.get(prefix + "key")
    key_md5 = headers.get(prefix + "key-MD5")
    if algorithm is None and encoded_key is None and key_md5 is None:
        return None
    if not secure and not allow_http:
        raise errors.sse_c_over_http()
    if other_method is not None:
        raise errors.sse_c_with_other_method()
    if algorithm is not None and algorithm != ALGORITHM:
        raise errors.sse_c_bad_algorithm(prefix + "algorithm", algorithm)
    if algorithm is None:
        raise errors.sse_c_missing_algorithm(prefix + "algorithm")
    if encoded_key is None:
        raise errors.sse_c_missing_key(prefix + "key")
    if key_md5 is None:
        raise errors.sse_c_missing_md5(prefix + "key-MD5")
    try:
        key = base64.b64decode(encoded_key, validate=True)
    except (binascii.Error, ValueError):
        raise errors.sse_c_invalid_key(prefix + "key") from None
    digest = base64.b64encode(hashlib.md5(key, usedforsecurity=False).digest()).decode("ascii")
    if not hmac.compare_digest(digest, key_md5.strip()):
        raise errors.sse_c_md5_mismatch(prefix + "key-MD5")
    if len(key) != KEY_SIZE:
        raise errors.sse_c_invalid_key(prefix + "key")
    return CustomerKey(key, digest)


def fingerprint(key: bytes, secret: bytes) -> tuple[bytes, bytes]:
    """``(salt, HMAC-SHA256(secret, salt || key))`` for storing: a fresh random salt each
    time, so two objects under the same customer key do not show it."""
    salt = os.urandom(SALT_SIZE)
    return salt, _mac(key, salt, secret)


def matches(key: bytes, salt: bytes, stored: bytes, secret: bytes) -> bool:
    """Whether ``key`` is the key :func:`fingerprint` saw, compared in constant time."""
    return hmac.compare_digest(_mac(key, salt, secret), stored)


def _mac(key: bytes, salt: bytes, secret: bytes) -> bytes:
    return hmac.new(secret, salt + key, hashlib.sha256).digest()
