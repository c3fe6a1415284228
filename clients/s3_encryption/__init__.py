"""Client-side S3 encryption (CSE-KMS, CSE-C) in the AWS S3 Encryption Client formats.

Writes V3 (key-committing, the official clients' default) or V2; reads V2, V3 and, behind
``allow_legacy_formats``, V1. Interoperates with the official S3 Encryption Clients.

    from clients.s3_encryption import EncryptingS3Client, KmsKeyring
    s3 = EncryptingS3Client(boto3.client("s3"), KmsKeyring(kms_client, "alias/my-key"))
    s3.put_object(Bucket="b", Key="k", Body=b"secret", EncryptionContext={"tenant": "t1"})
    s3.get_object(Bucket="b", Key="k", EncryptionContext={"tenant": "t1"})["Body"].read()
"""

from clients.s3_encryption.body import PlaintextBody
from clients.s3_encryption.client import DEFAULT_BUFFER_SIZE, DEFAULT_PART_SIZE, EncryptingS3Client
from clients.s3_encryption.errors import (
    EncryptionContextMismatchError,
    InvalidEncryptionContextError,
    InvalidRangeError,
    KeyCommitmentError,
    KeyringError,
    LegacyFormatError,
    ObjectTooLargeError,
    RangedGetNotAllowedError,
    S3EncryptionError,
    TamperedMetadataError,
    TamperedObjectError,
    TruncatedObjectError,
    UnknownFormatError,
    WrongKeyError,
)
from clients.s3_encryption.formats import (
    GCM_MAX_CONTENT_LENGTH,
    ContentAlgorithm,
    FormatVersion,
    MetadataStorage,
    WrapAlgorithm,
)
from clients.s3_encryption.keyrings import (
    AesGcmKeyring,
    DataKey,
    Keyring,
    KmsKeyring,
    RsaOaepKeyring,
)
from clients.s3_encryption.metadata import Envelope

__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_PART_SIZE",
    "GCM_MAX_CONTENT_LENGTH",
    "AesGcmKeyring",
    "ContentAlgorithm",
    "DataKey",
    "EncryptingS3Client",
    "EncryptionContextMismatchError",
    "Envelope",
    "FormatVersion",
    "InvalidEncryptionContextError",
    "InvalidRangeError",
    "KeyCommitmentError",
    "Keyring",
    "KeyringError",
    "KmsKeyring",
    "LegacyFormatError",
    "MetadataStorage",
    "ObjectTooLargeError",
    "PlaintextBody",
    "RangedGetNotAllowedError",
    "RsaOaepKeyring",
    "S3EncryptionError",
    "TamperedMetadataError",
    "TamperedObjectError",
    "TruncatedObjectError",
    "UnknownFormatError",
    "WrapAlgorithm",
    "WrongKeyError",
]
