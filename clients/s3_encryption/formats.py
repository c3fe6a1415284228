"""Names and sizes of the S3 Encryption Client formats (V1, V2, V3): the shared vocabulary.

Values are exactly what the official clients write, so they can be compared with metadata.
"""

from __future__ import annotations

import enum

DATA_KEY_LENGTH = 32
"""Every suite uses a 256-bit data key."""

GCM_TAG_LENGTH = 16
GCM_IV_LENGTH = 12
CBC_IV_LENGTH = 16
MESSAGE_ID_LENGTH = 28
KEY_COMMITMENT_LENGTH = 28

GCM_MAX_CONTENT_LENGTH = (1 << 36) - 32
"""NIST SP 800-38D: 2^39 - 256 bits per (key, IV) = 68,719,476,704 bytes of plaintext."""

RESERVED_CONTEXT_KEY = "aws:x-amz-cek-alg"
"""Encryption-context key the official clients add to bind the content algorithm."""

LEGACY_KMS_CONTEXT_KEY = "kms_cmk_id"
"""Matdesc key of the legacy ``kms`` wrap; removed before comparing contexts, as Java does."""


class FormatVersion(enum.Enum):
    """Envelope generation: which metadata keys an object carries."""

    V1 = 1
    V2 = 2
    V3 = 3


class ContentAlgorithm(enum.Enum):
    """Content encryption suite. ``value`` is the string the suite is known by on the wire.

    For V2 that is the cipher name (``x-amz-cek-alg``); for V3 the decimal suite id
    (``x-amz-c``). The same string is the KMS ``aws:x-amz-cek-alg`` value, the AAD of the
    AES/GCM key wrap and the suffix of the RSA-OAEP pseudo data key.
    """

    AES_CBC = "AES/CBC/PKCS5Padding"
    AES_GCM = "AES/GCM/NoPadding"
    AES_GCM_COMMITTING = "115"

    @property
    def is_legacy(self) -> bool:
        """True for suites this client only decrypts (unauthenticated CBC)."""
        return self is ContentAlgorithm.AES_CBC

    @property
    def wire_bytes(self) -> bytes:
        """The suite string as UTF-8, as used for AAD and the RSA pseudo data key."""
        return self.value.encode("ascii")


CBC_CIPHER_ALIASES = {"AES/CBC/PKCS5Padding", "AES/CBC/PKCS7Padding"}
"""Ruby writes the PKCS7 spelling; both are the same cipher."""


class WrapAlgorithm(enum.Enum):
    """How the data key was wrapped. ``value`` is the V1/V2 ``x-amz-wrap-alg`` label."""

    KMS_CONTEXT = "kms+context"
    AES_GCM = "AES/GCM"
    RSA_OAEP_SHA1 = "RSA-OAEP-SHA1"
    # Legacy, decrypt-only:
    KMS = "kms"
    AES_WRAP = "AESWrap"
    AES = "AES"
    RSA = "RSA"

    @property
    def is_legacy(self) -> bool:
        """True for wraps this client only unwraps behind ``allow_legacy_formats``."""
        return self in _LEGACY_WRAPS

    @property
    def v3_code(self) -> str:
        """The V3 ``x-amz-w`` code. Raises ValueError for wraps V3 cannot express."""
        for code, wrap in V3_WRAP_CODES.items():
            if wrap is self:
                return code
        raise ValueError(f"wrap algorithm {self.value!r} has no V3 code")


_LEGACY_WRAPS = frozenset(
    {WrapAlgorithm.KMS, WrapAlgorithm.AES_WRAP, WrapAlgorithm.AES, WrapAlgorithm.RSA}
)

V3_WRAP_CODES: dict[str, WrapAlgorithm] = {
    "02": WrapAlgorithm.AES_GCM,
    "12": WrapAlgorithm.KMS_CONTEXT,
    "22": WrapAlgorithm.RSA_OAEP_SHA1,
}
"""The only ``x-amz-w`` values the V3 format allows."""


class MetadataStorage(enum.Enum):
    """Where a writer puts the envelope."""

    OBJECT_METADATA = "object-metadata"
    INSTRUCTION_FILE = "instruction-file"
