"""The records the S3 metadata store keeps: buckets, objects, segments, uploads, parts."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from s3_service.envelope import SSE_KMS, SSE_S3, Envelope


@dataclass(frozen=True)
class BucketEncryption:
    """A bucket's default encryption (``PutBucketEncryption``). ``algorithm`` is ``AES256``
    or ``aws:kms``; ``blocked_sse_c`` is ``BlockedEncryptionTypes`` containing ``SSE-C``."""

    algorithm: str = SSE_S3
    kms_key_id: str | None = None
    bucket_key: bool = False
    blocked_sse_c: bool = False

    def to_json(self) -> str:
        return json.dumps(
            {
                "algorithm": self.algorithm,
                "kms_key_id": self.kms_key_id,
                "bucket_key": self.bucket_key,
                "blocked_sse_c": self.blocked_sse_c,
            },
            sort_keys=True,
        )

    @classmethod
    def from_json(cls, text: str) -> BucketEncryption:
        data = json.loads(text)
        algorithm = data.get("algorithm", SSE_S3)
        if algorithm not in (SSE_S3, SSE_KMS):
            raise ValueError(f"unknown bucket encryption {algorithm!r}")
        return cls(
            algorithm=algorithm,
            kms_key_id=data.get("kms_key_id"),
            bucket_key=bool(data.get("bucket_key", False)),
            blocked_sse_c=bool(data.get("blocked_sse_c", False)),
        )


#: What a bucket without a configuration does, as on AWS since January 2023.
DEFAULT_BUCKET_ENCRYPTION = BucketEncryption()


@dataclass(frozen=True)
class BucketRecord:
    name: str
    account_id: str
    region: str
    created: float
    encryption: BucketEncryption | None = None

    @property
    def effective_encryption(self) -> BucketEncryption:
        return self.encryption or DEFAULT_BUCKET_ENCRYPTION


@dataclass(frozen=True)
class Segment:
    """One encrypted file of an object: its blob id, HKDF salt and plaintext size."""

    blob: str
    salt: bytes
    size: int


@dataclass(frozen=True)
class ContentAttributes:
    """What S3 stores from the write request and returns on reads: ``Content-Type``, the
    other representation headers (``Cache-Control``, ``Content-Disposition``, ...), the
    ``x-amz-meta-*`` user metadata (names lower-cased, without the prefix), storage class."""

    content_type: str = "binary/octet-stream"
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    storage_class: str = "STANDARD"


@dataclass(frozen=True)
class ObjectRecord:
    bucket: str
    key: str
    version_id: str
    size: int
    etag: str
    last_modified: float
    attributes: ContentAttributes
    envelope: Envelope
    segments: tuple[Segment, ...]
    #: ``x-amz-checksum-<algorithm>`` sent and verified on a single-part write, else empty.
    checksum: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ListedObject:
    """An object as listings show it (no encryption, no segments)."""

    key: str
    size: int
    etag: str
    last_modified: float
    storage_class: str


@dataclass(frozen=True)
class UploadRecord:
    upload_id: str
    bucket: str
    key: str
    initiated: float
    account_id: str
    attributes: ContentAttributes
    envelope: Envelope


@dataclass(frozen=True)
class PartRecord:
    part_number: int
    segment: Segment
    etag: str
    last_modified: float
