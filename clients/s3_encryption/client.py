"""``EncryptingS3Client``: client-side encryption around any boto3-shaped S3 client.

Objects are written in the S3 Encryption Client V3 format (V2 on request), with the envelope
in object metadata or an instruction file, and read back from V2/V3 (V1 behind an opt-in).
Large objects stream: uploads go multipart through one GCM stream, downloads decrypt chunk by
chunk, so memory stays bounded by the part size and the buffer size, not the object size.
The writing half is :mod:`.upload`, the reading half :mod:`.download`, what both share
:mod:`.transfer`.
"""

from __future__ import annotations

from typing import Any

from clients.s3_encryption.download import DEFAULT_BUFFER_SIZE, ObjectReader
from clients.s3_encryption.formats import GCM_MAX_CONTENT_LENGTH, FormatVersion, MetadataStorage
from clients.s3_encryption.keyrings import Keyring
from clients.s3_encryption.metadata import DEFAULT_INSTRUCTION_FILE_SUFFIX
from clients.s3_encryption.upload import DEFAULT_PART_SIZE, ObjectWriter


class EncryptingS3Client(ObjectWriter, ObjectReader):
    """Client-side encryption (CSE-KMS, CSE-C) around a boto3 S3 client.

    Method names and keyword arguments follow boto3; every method also takes
    ``EncryptionContext`` (KMS keyrings only; it must be given identically on read).

    Parameters:
        s3_client: a boto3 S3 client (any endpoint: AWS, MinIO, moto, ...). It is not
            modified; ``.s3_client`` gives it back for plain calls.
        keyring: a :class:`~clients.s3_encryption.keyrings.KmsKeyring`, ``AesGcmKeyring`` or
            ``RsaOaepKeyring``.
        format_version: ``FormatVersion.V3`` (default, key-committing) or ``V2``.
        metadata_storage: envelope in object metadata (default) or ``<key>.instruction``.
        part_size: plaintext bytes per multipart part and the single-PUT threshold; a
            multiple of 16 (S3 itself wants at least 5 MiB for all but the last part).
        allow_legacy_formats: also read V1, AES-CBC and legacy-wrapped (``kms``, ``AESWrap``,
            ``AES``, ``RSA``) objects. Off by default: they are unauthenticated or weaker.
        allow_unauthenticated_ranged_get: allow ``Range=`` on ``get_object``. Ranges are
            decrypted with AES-CTR and cannot be authenticated (Java's legacy opt-in).
        delayed_authentication: ``get_object`` / ``download_fileobj`` stream plaintext before
            the tag is checked (it is checked at the end and raises then). Off by default:
            plaintext is released only after the whole object authenticated.
        buffer_size: bytes kept in memory while verifying before release; more spills to a
            temporary file, so memory stays bounded for any object size.
        instruction_file_suffix: suffix of instruction files on read (writes always use
            ``.instruction``, as the specification requires).
    """

    def __init__(
        self,
        s3_client: Any,
        keyring: Keyring,
        *,
        format_version: FormatVersion = FormatVersion.V3,
        metadata_storage: MetadataStorage = MetadataStorage.OBJECT_METADATA,
        part_size: int = DEFAULT_PART_SIZE,
        allow_legacy_formats: bool = False,
        allow_unauthenticated_ranged_get: bool = False,
        delayed_authentication: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        instruction_file_suffix: str = DEFAULT_INSTRUCTION_FILE_SUFFIX,
    ) -> None:
        if format_version is FormatVersion.V1:
            raise ValueError("V1 is read-only; write V3 (default) or V2")
        if part_size <= 0 or part_size % 16:
            raise ValueError("part_size must be a positive multiple of 16 bytes")
        if buffer_size < 0:
            raise ValueError("buffer_size must not be negative")
        self.s3_client = s3_client
        self.keyring = keyring
        self.format_version = format_version
        self.metadata_storage = metadata_storage
        self.part_size = part_size
        self.allow_legacy_formats = allow_legacy_formats
        self.allow_unauthenticated_ranged_get = allow_unauthenticated_ranged_get
        self.delayed_authentication = delayed_authentication
        self.buffer_size = buffer_size
        self.instruction_file_suffix = instruction_file_suffix


__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_PART_SIZE",
    "GCM_MAX_CONTENT_LENGTH",
    "EncryptingS3Client",
]
