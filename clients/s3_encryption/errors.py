"""Exceptions raised by the S3 client-side encryption helpers.

Every failure a caller can act on has its own class, all under :class:`S3EncryptionError`:

* :class:`UnknownFormatError`: the object is not one this client can read (not client-side
  encrypted, an algorithm it does not know, an instruction file that is missing).
* :class:`TamperedMetadataError`: the envelope metadata contradicts itself (keys of two format
  versions, a forged instruction file, undecodable values).
* :class:`LegacyFormatError`: a V1 / CBC / legacy-wrapped object, read without the opt-in.
* :class:`WrongKeyError`: the data key could not be unwrapped with the configured key.
* :class:`EncryptionContextMismatchError`: the caller's encryption context is not the stored one.
* :class:`TamperedObjectError` (and :class:`KeyCommitmentError`, :class:`TruncatedObjectError`):
  the content failed authentication.
* :class:`ObjectTooLargeError`: more plaintext than one AES-GCM stream may encrypt.
* :class:`InvalidEncryptionContextError`: a context the official clients would refuse.
* :class:`RangedGetNotAllowedError`, :class:`InvalidRangeError`: ranged GET problems.
* :class:`KeyringError`: the key service refused to produce or unwrap a data key.
"""

from __future__ import annotations


class S3EncryptionError(Exception):
    """Base class of every error the S3 encryption helpers raise on purpose."""


class UnknownFormatError(S3EncryptionError):
    """The object carries no envelope this client understands."""


class TamperedMetadataError(S3EncryptionError):
    """The envelope metadata is malformed or mixes format versions (possible tampering)."""


class LegacyFormatError(S3EncryptionError):
    """A legacy (V1, CBC or legacy key wrap) object was read without ``allow_legacy_formats``."""


class KeyringError(S3EncryptionError):
    """A keyring could not produce or unwrap a data key.

    ``code`` is the AWS error name when a KMS answered with one (``None`` otherwise).
    """

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class WrongKeyError(KeyringError):
    """The data key could not be unwrapped with the configured master key."""


class EncryptionContextMismatchError(S3EncryptionError):
    """The encryption context given on read differs from the one bound at write time."""


class InvalidEncryptionContextError(S3EncryptionError, ValueError):
    """The encryption context is not acceptable (reserved key, non-ASCII, wrong keyring)."""


class TamperedObjectError(S3EncryptionError):
    """The object's content failed authentication: it was modified or truncated."""


class KeyCommitmentError(TamperedObjectError):
    """The V3 key commitment stored with the object does not match the data key."""


class TruncatedObjectError(TamperedObjectError):
    """The object (or the download of it) ended before its authentication tag."""


class ObjectTooLargeError(S3EncryptionError, ValueError):
    """The plaintext exceeds what one AES-GCM (key, IV) pair may encrypt (64 GiB - 32 bytes)."""


class RangedGetNotAllowedError(S3EncryptionError):
    """``Range=`` was used without ``allow_unauthenticated_ranged_get=True``."""


class InvalidRangeError(S3EncryptionError, ValueError):
    """The requested byte range is malformed or outside the object's plaintext."""
