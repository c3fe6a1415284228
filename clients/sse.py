"""boto3 arguments for S3 server-side encryption: SSE-S3, SSE-KMS and SSE-C.

Together with :mod:`clients.s3_encryption` (CSE-KMS, CSE-C) this puts all five S3 encryption
mechanisms in one place. The helpers only build keyword arguments; they work against AWS S3,
mock-kms's own S3 endpoint, or any S3-compatible server::

    s3.put_object(Bucket=b, Key=k, Body=data, **sse_kms("alias/app", context={"app": "x"}))
    key = CustomerKey.generate()
    s3.put_object(Bucket=b, Key=k, Body=data, **key.put_args())
    s3.get_object(Bucket=b, Key=k, **key.get_args())
    s3.copy_object(Bucket=b, Key=k2, CopySource={...}, **key.copy_source_args(), **sse_kms())

SSE-C keys are handed to boto3 as the 32 raw bytes with no MD5 (docs/aws-behaviours.md): botocore
then base64-encodes the key and adds its MD5 itself. Passing an MD5 yourself switches that off
and would send the raw bytes. ``ListParts`` is the exception botocore does not encode, so
:meth:`CustomerKey.encoded_args` gives the pre-encoded form for it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

AES256 = "AES256"
AWS_KMS = "aws:kms"
KEY_SIZE = 32


def sse_s3() -> dict[str, Any]:
    """SSE-S3: S3-managed keys (also what S3 does when you say nothing)."""
    return {"ServerSideEncryption": AES256}


def sse_kms(
    key_id: str | None = None,
    *,
    context: Mapping[str, str] | None = None,
    bucket_key: bool | None = None,
) -> dict[str, Any]:
    """SSE-KMS for PutObject, CopyObject and CreateMultipartUpload.

    ``key_id`` is a key id, key ARN, alias name or alias ARN; None means the account's AWS
    managed key ``alias/aws/s3``. ``context`` is extra encryption context (S3 adds
    ``aws:s3:arn`` itself); it is sent as base64 of UTF-8 JSON, as S3 requires. Raises
    TypeError for a context whose keys or values are not strings.
    """
    args: dict[str, Any] = {"ServerSideEncryption": AWS_KMS}
    if key_id is not None:
        args["SSEKMSKeyId"] = key_id
    if context is not None:
        if not all(isinstance(k, str) and isinstance(v, str) for k, v in context.items()):
            raise TypeError("an encryption context maps strings to strings")
        encoded = json.dumps(dict(context), separators=(",", ":")).encode("utf-8")
        args["SSEKMSEncryptionContext"] = base64.b64encode(encoded).decode("ascii")
    if bucket_key is not None:
        args["BucketKeyEnabled"] = bucket_key
    return args


@dataclass(frozen=True)
class CustomerKey:
    """An SSE-C key: 32 secret bytes the caller keeps and S3 never stores.

    The key is left out of ``repr`` so that it does not end up in logs or test reports.
    """

    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.key) != KEY_SIZE:
            raise ValueError(f"an SSE-C key is {KEY_SIZE} bytes, got {len(self.key)}")

    @classmethod
    def generate(cls) -> CustomerKey:
        """A fresh random key (from ``os.urandom``)."""
        return cls(os.urandom(KEY_SIZE))

    @classmethod
    def from_base64(cls, value: str) -> CustomerKey:
        """A key given as base64 (as stored in a secrets manager). Raises ValueError."""
        return cls(base64.b64decode(value, validate=True))

    @classmethod
    def from_file(cls, path: Path) -> CustomerKey:
        """A key stored as 32 raw bytes (the AWS CLI's ``fileb://`` form). Raises ValueError,
        OSError."""
        return cls(path.read_bytes())

    def save(self, path: Path) -> None:
        """Write the 32 raw bytes to a new file only the owner can read (for the AWS CLI's
        ``--sse-c-key fileb://PATH``). Raises FileExistsError rather than overwrite a key."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(self.key)

    @property
    def base64(self) -> str:
        return base64.b64encode(self.key).decode("ascii")

    @property
    def md5(self) -> str:
        """base64 of the key's MD5, which S3 echoes as ``SSECustomerKeyMD5``."""
        return base64.b64encode(hashlib.md5(self.key, usedforsecurity=False).digest()).decode()

    def put_args(self) -> dict[str, Any]:
        """PutObject, CreateMultipartUpload, UploadPart, CompleteMultipartUpload, CopyObject
        (destination): botocore encodes the key and adds the MD5."""
        return {"SSECustomerAlgorithm": AES256, "SSECustomerKey": self.key}

    def get_args(self) -> dict[str, Any]:
        """GetObject and HeadObject (the same three parameters as a write)."""
        return self.put_args()

    def copy_source_args(self) -> dict[str, Any]:
        """CopyObject / UploadPartCopy from an object encrypted under this key."""
        return {"CopySourceSSECustomerAlgorithm": AES256, "CopySourceSSECustomerKey": self.key}

    def encoded_args(self) -> dict[str, Any]:
        """Pre-encoded key and MD5, for operations botocore does not encode (ListParts)."""
        return {
            "SSECustomerAlgorithm": AES256,
            "SSECustomerKey": self.base64,
            "SSECustomerKeyMD5": self.md5,
        }

    def headers(self, *, copy_source: bool = False) -> dict[str, str]:
        """The raw HTTP headers (for presigned URLs or hand-made requests)."""
        prefix = (
            "x-amz-copy-source-server-side-encryption-customer-"
            if copy_source
            else "x-amz-server-side-encryption-customer-"
        )
        return {
            prefix + "algorithm": AES256,
            prefix + "key": self.base64,
            prefix + "key-MD5": self.md5,
        }

    def cli_args(self, key_file: Path, *, copy_source: bool = False) -> list[str]:
        """``aws s3 cp`` options for a key saved with :meth:`save` at ``key_file``."""
        if copy_source:
            return ["--sse-c-copy-source", AES256, "--sse-c-copy-source-key", f"fileb://{key_file}"]
        return ["--sse-c", AES256, "--sse-c-key", f"fileb://{key_file}"]
