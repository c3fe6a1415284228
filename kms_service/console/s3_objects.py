"""Reading S3 objects for the console, through the S3 service's own store, blob files and key
service: an object's protection, including an envelope kept in an instruction file.

An instruction file is read only when this S3 protects it with SSE-S3 (the default), which
needs no KMS call and no customer key; otherwise the page says it was not read.
"""

from __future__ import annotations

from collections.abc import Mapping

from clients.s3_encryption.errors import TamperedMetadataError
from clients.s3_encryption.metadata import (
    DEFAULT_INSTRUCTION_FILE_SUFFIX,
    INSTRUCTION_FILE_MARKER,
    MAX_INSTRUCTION_FILE_SIZE,
    parse_instruction_file,
)
from kms_service.console.protection import (
    InstructionFileUnreadable,
    InstructionLoader,
    Protection,
    classify,
)
from s3_service.datapath import plaintext_pieces
from s3_service.envelope import SSE_S3
from s3_service.errors import S3Error
from s3_service.records import BucketRecord, ObjectRecord
from s3_service.services import S3Services


def object_protection(s3: S3Services, bucket: BucketRecord, stored: ObjectRecord) -> Protection:
    """How ``stored`` is protected, reading its instruction file when it needs one."""
    return classify(
        stored.envelope, stored.attributes.metadata, _instruction_loader(s3, bucket, stored.key)
    )


def _instruction_loader(s3: S3Services, bucket: BucketRecord, key: str) -> InstructionLoader:
    def load() -> Mapping[str, str] | None:
        name = key + DEFAULT_INSTRUCTION_FILE_SUFFIX
        try:
            record = s3.store.get_object(bucket.name, name)
        except S3Error:
            return None
        if INSTRUCTION_FILE_MARKER not in record.attributes.metadata:
            return None
        if record.envelope.mode != SSE_S3:
            raise InstructionFileUnreadable(
                f"the envelope is in {name}, which this S3 protects with "
                f"{'SSE-KMS' if record.envelope.mode == 'aws:kms' else 'SSE-C'}: not read here"
            )
        if record.size > MAX_INSTRUCTION_FILE_SIZE:
            raise InstructionFileUnreadable(f"{name} is implausibly large: not read")
        data_key = s3.keys.open(record.envelope, None, bucket, None)
        pieces = plaintext_pieces(s3.blobs, record.segments, data_key, record.size)
        try:
            body = b"".join(pieces)
        finally:
            pieces.close()
        try:
            return parse_instruction_file(body)
        except TamperedMetadataError as exc:
            raise InstructionFileUnreadable(f"{name} is malformed: {exc}") from None

    return load
