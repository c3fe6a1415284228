"""What every S3 operation needs, built once per worker process."""

from __future__ import annotations

from dataclasses import dataclass

from s3_service.auth import S3Authenticator
from s3_service.blobs import BlobStore
from s3_service.encryption import KeyService
from s3_service.store import S3Store


@dataclass(frozen=True)
class S3Services:
    store: S3Store
    blobs: BlobStore
    keys: KeyService
    default_region: str
    default_account: str
    #: ``--allow-sse-c-over-http``: accept SSE-C keys without TLS (AWS refuses).
    allow_sse_c_over_http: bool
    #: Who is calling: SigV4 checked in ``sigv4`` mode (docs/access-control.md, "S3").
    authenticator: S3Authenticator
