"""Content encryption: streaming AES-GCM (V2), the V3 HKDF-SHA512 key-committing suite,
legacy AES-CBC decryption, and AES-CTR decryption of ranges of GCM objects.

Encryptors and decryptors are incremental (``update`` / ``finalize``) so callers can stream
objects of any size in constant memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct
from dataclasses import dataclass, field
from typing import Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDFExpand

from clients.s3_encryption.errors import (
    KeyCommitmentError,
    ObjectTooLargeError,
    TamperedObjectError,
    TruncatedObjectError,
)
from clients.s3_encryption.formats import (
    CBC_IV_LENGTH,
    DATA_KEY_LENGTH,
    GCM_IV_LENGTH,
    GCM_MAX_CONTENT_LENGTH,
    GCM_TAG_LENGTH,
    KEY_COMMITMENT_LENGTH,
    MESSAGE_ID_LENGTH,
    ContentAlgorithm,
)

V3_SUITE_ID = b"\x00\x73"
"""Suite 0x0073: the HKDF info prefix and the content AAD of V3."""
V3_CONTENT_IV = b"\x01" * GCM_IV_LENGTH
"""V3's fixed GCM IV; safe because every Message ID derives a fresh key."""
_DERIVE_KEY_LABEL = b"DERIVEKEY"
_COMMIT_KEY_LABEL = b"COMMITKEY"
# Highest block offset whose CTR counter still fits the 32-bit GCM counter (J0 + 1 + offset).
_MAX_CTR_BLOCK_OFFSET = 2**32 - 2


def check_content_length(length: int) -> None:
    """Raise ObjectTooLargeError if ``length`` plaintext bytes exceed one GCM stream's limit."""
    if length > GCM_MAX_CONTENT_LENGTH:
        raise ObjectTooLargeError(
            f"{length} bytes exceed the AES-GCM limit of {GCM_MAX_CONTENT_LENGTH} bytes per object"
        )


def derive_v3_keys(data_key: bytes, message_id: bytes) -> tuple[bytes, bytes]:
    """Derive (content key, key commitment) for suite 0x0073 from the data key.

    HKDF-SHA512 with salt = Message ID and IKM = data key; the expand ``info`` is the suite id
    followed by ``DERIVEKEY`` (32 bytes) or ``COMMITKEY`` (28 bytes).
    Raises ValueError for a data key or Message ID of the wrong size.
    """
    if len(data_key) != DATA_KEY_LENGTH:
        raise ValueError(f"data key must be {DATA_KEY_LENGTH} bytes")
    if len(message_id) != MESSAGE_ID_LENGTH:
        raise ValueError(f"message id must be {MESSAGE_ID_LENGTH} bytes")
    pseudo_random_key = hmac.new(message_id, data_key, hashlib.sha512).digest()
    content_key = HKDFExpand(
        hashes.SHA512(), DATA_KEY_LENGTH, V3_SUITE_ID + _DERIVE_KEY_LABEL
    ).derive(pseudo_random_key)
    commitment = HKDFExpand(
        hashes.SHA512(), KEY_COMMITMENT_LENGTH, V3_SUITE_ID + _COMMIT_KEY_LABEL
    ).derive(pseudo_random_key)
    return content_key, commitment


def verified_v3_content_key(data_key: bytes, message_id: bytes, stored_commitment: bytes) -> bytes:
    """The V3 content key, after checking the stored commitment in constant time.

    Raises KeyCommitmentError if the commitment does not match: the data key (or Message ID)
    is not the one the object was encrypted with, so no plaintext may be produced.
    """
    content_key, commitment = derive_v3_keys(data_key, message_id)
    if not hmac.compare_digest(commitment, stored_commitment):
        raise KeyCommitmentError(
            "key commitment mismatch: the object's data key or message id was tampered with"
        )
    return content_key


@dataclass(frozen=True)
class ContentParameters:
    """The per-object values a writer stores next to the ciphertext."""

    algorithm: ContentAlgorithm
    iv: bytes | None = None
    message_id: bytes | None = None
    key_commitment: bytes | None = field(default=None, repr=False)


class ContentEncryptor:
    """Incremental AES-256-GCM encryption that refuses to exceed the GCM length limit.

    ``update`` returns exactly as many bytes as it is given (GCM is a stream mode);
    ``finalize`` returns the 16-byte tag. The output is ``ciphertext || tag``.
    """

    def __init__(self, key: bytes, iv: bytes, associated_data: bytes | None) -> None:
        self._encryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
        if associated_data:
            self._encryptor.authenticate_additional_data(associated_data)
        self._plaintext_length = 0

    @property
    def plaintext_length(self) -> int:
        """Plaintext bytes encrypted so far."""
        return self._plaintext_length

    def update(self, plaintext: bytes) -> bytes:
        """Encrypt the next plaintext chunk. Raises ObjectTooLargeError past the GCM limit."""
        check_content_length(self._plaintext_length + len(plaintext))
        self._plaintext_length += len(plaintext)
        return self._encryptor.update(plaintext)

    def update_into(self, plaintext: bytes | bytearray | memoryview, out: bytearray) -> int:
        """Encrypt the next chunk into ``out`` (at least as long); returns the bytes written.

        Lets a caller reuse one output buffer for every part instead of a fresh allocation.
        Raises ObjectTooLargeError past the GCM limit.
        """
        check_content_length(self._plaintext_length + len(plaintext))
        self._plaintext_length += len(plaintext)
        return self._encryptor.update_into(plaintext, out)

    def finalize(self) -> bytes:
        """Finish the stream and return the authentication tag (any buffered bytes first)."""
        tail = self._encryptor.finalize()
        return tail + self._encryptor.tag


def start_encryption(
    algorithm: ContentAlgorithm,
    data_key: bytes,
    *,
    iv: bytes | None = None,
    message_id: bytes | None = None,
) -> tuple[ContentEncryptor, ContentParameters]:
    """Begin encrypting one object with ``algorithm`` under ``data_key``.

    A fresh random IV (V2) or Message ID (V3) is drawn unless one is given (known-answer tests
    only: never reuse them). Returns the encryptor and the parameters to store.
    Raises ValueError for a legacy algorithm or bad sizes.
    """
    if len(data_key) != DATA_KEY_LENGTH:
        raise ValueError(f"data key must be {DATA_KEY_LENGTH} bytes")
    if algorithm is ContentAlgorithm.AES_GCM:
        iv = os.urandom(GCM_IV_LENGTH) if iv is None else iv
        if len(iv) != GCM_IV_LENGTH:
            raise ValueError(f"GCM IV must be {GCM_IV_LENGTH} bytes")
        return ContentEncryptor(data_key, iv, None), ContentParameters(algorithm, iv=iv)
    if algorithm is ContentAlgorithm.AES_GCM_COMMITTING:
        message_id = os.urandom(MESSAGE_ID_LENGTH) if message_id is None else message_id
        content_key, commitment = derive_v3_keys(data_key, message_id)
        encryptor = ContentEncryptor(content_key, V3_CONTENT_IV, V3_SUITE_ID)
        return encryptor, ContentParameters(
            algorithm, message_id=message_id, key_commitment=commitment
        )
    raise ValueError(f"{algorithm.value} is decrypt-only")


class ContentDecryptor(Protocol):
    """Incremental decryption. ``finalize`` authenticates; it raises TamperedObjectError."""

    def update(self, ciphertext: bytes) -> bytes:
        """Decrypt the next chunk; may hold back trailing bytes (tag, padding)."""
        ...

    def finalize(self) -> bytes:
        """Return any held-back plaintext once the whole object checks out."""
        ...


class GcmContentDecryptor:
    """Streaming AES-GCM decryption of ``ciphertext || tag`` of unknown length.

    The last 16 bytes seen are held back as the candidate tag. Plaintext returned by
    ``update`` is unauthenticated until ``finalize`` returns: callers that must not release
    unverified data buffer it (see the client's verify-then-release default).
    """

    def __init__(self, key: bytes, iv: bytes, associated_data: bytes | None) -> None:
        self._decryptor = Cipher(algorithms.AES(key), modes.GCM(iv)).decryptor()
        if associated_data:
            self._decryptor.authenticate_additional_data(associated_data)
        self._tail = b""

    def update(self, ciphertext: bytes) -> bytes:
        """Decrypt all but the last 16 bytes seen so far."""
        data = self._tail + ciphertext
        if len(data) <= GCM_TAG_LENGTH:
            self._tail = data
            return b""
        self._tail = data[-GCM_TAG_LENGTH:]
        return self._decryptor.update(data[:-GCM_TAG_LENGTH])

    def update_into(self, ciphertext: bytes | bytearray | memoryview, out: bytearray) -> int:
        """Like :meth:`update`, into ``out`` (at least ``len(ciphertext) + 16`` bytes) without
        copying the chunk; returns the plaintext bytes written."""
        if len(ciphertext) <= GCM_TAG_LENGTH:
            plaintext = self.update(bytes(ciphertext))
            out[: len(plaintext)] = plaintext
            return len(plaintext)
        chunk = memoryview(ciphertext)
        written = self._decryptor.update_into(self._tail, out) if self._tail else 0
        with memoryview(out) as target:
            written += self._decryptor.update_into(chunk[:-GCM_TAG_LENGTH], target[written:])
        self._tail = bytes(chunk[-GCM_TAG_LENGTH:])
        return written

    def finalize(self) -> bytes:
        """Verify the tag. Raises TruncatedObjectError / TamperedObjectError on failure."""
        if len(self._tail) < GCM_TAG_LENGTH:
            raise TruncatedObjectError(
                "object is shorter than its 16-byte authentication tag: truncated"
            )
        try:
            return self._decryptor.finalize_with_tag(self._tail)
        except InvalidTag:
            raise TamperedObjectError(
                "authentication failed: the object was modified or truncated, or it was "
                "encrypted under a different data key"
            ) from None


class CbcContentDecryptor:
    """Legacy AES-256-CBC/PKCS#7 decryption. Every failure is the same error (no oracle)."""

    def __init__(self, key: bytes, iv: bytes) -> None:
        if len(iv) != CBC_IV_LENGTH:
            raise ValueError(f"CBC IV must be {CBC_IV_LENGTH} bytes")
        self._decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        self._unpadder = padding.PKCS7(128).unpadder()

    def update(self, ciphertext: bytes) -> bytes:
        """Decrypt the next chunk (whole blocks; the last block waits for the padding check)."""
        return self._unpadder.update(self._decryptor.update(ciphertext))

    def finalize(self) -> bytes:
        """Check the padding. Raises TamperedObjectError for any failure."""
        try:
            return self._unpadder.update(self._decryptor.finalize()) + self._unpadder.finalize()
        except ValueError:
            raise TamperedObjectError("legacy CBC object could not be decrypted") from None


def start_decryption(
    algorithm: ContentAlgorithm,
    data_key: bytes,
    *,
    iv: bytes | None = None,
    message_id: bytes | None = None,
    key_commitment: bytes | None = None,
) -> ContentDecryptor:
    """Begin decrypting one object's content.

    For V3 the key commitment is verified (constant time) before a decryptor exists, so a
    wrong or substituted data key never yields plaintext. Raises KeyCommitmentError, or
    ValueError if the parameters the algorithm needs are missing.
    """
    if algorithm is ContentAlgorithm.AES_GCM_COMMITTING:
        if message_id is None or key_commitment is None:
            raise ValueError("V3 decryption needs the message id and the key commitment")
        content_key = verified_v3_content_key(data_key, message_id, key_commitment)
        return GcmContentDecryptor(content_key, V3_CONTENT_IV, V3_SUITE_ID)
    if iv is None:
        raise ValueError(f"{algorithm.value} decryption needs the content IV")
    if algorithm is ContentAlgorithm.AES_GCM:
        return GcmContentDecryptor(data_key, iv, None)
    return CbcContentDecryptor(data_key, iv)


def crypto_range(first: int, last: int) -> tuple[int, int]:
    """The ciphertext byte range (inclusive) to fetch for plaintext bytes ``first..last``.

    Java's ``RangedGetUtils``: widen to whole 16-byte blocks plus one block each side.
    """
    if first < 0 or last < first:
        raise ValueError("invalid range")
    return max(0, first - first % 16 - 16), last + (16 - last % 16) + 16


class CtrRangeDecryptor:
    """AES-CTR decryption of a slice of a GCM ciphertext that starts at byte ``offset``.

    GCM encrypts plaintext block *n* with counter ``IV || be32(2 + n)``, so CTR from that
    counter reproduces it. No tag is checked: the result is unauthenticated.
    """

    def __init__(self, key: bytes, iv: bytes, offset: int) -> None:
        if offset % 16:
            raise ValueError("a CTR range must start on a 16-byte block boundary")
        block = offset // 16
        if block > _MAX_CTR_BLOCK_OFFSET:
            raise ValueError("range offset beyond the GCM counter space")
        counter = iv + struct.pack(">I", 2 + block)
        self._decryptor = Cipher(algorithms.AES(key), modes.CTR(counter)).decryptor()

    def update(self, ciphertext: bytes) -> bytes:
        """Decrypt the next chunk of the slice."""
        return self._decryptor.update(ciphertext)


def ctr_key_and_iv(
    algorithm: ContentAlgorithm,
    data_key: bytes,
    *,
    iv: bytes | None = None,
    message_id: bytes | None = None,
    key_commitment: bytes | None = None,
) -> tuple[bytes, bytes]:
    """(key, 12-byte IV) for CTR-decrypting ranges of a GCM object (suites 0x0071 / 0x0074).

    V3 verifies the key commitment first. Raises KeyCommitmentError, or ValueError for CBC
    objects (no ranged reads) or missing parameters.
    """
    if algorithm is ContentAlgorithm.AES_GCM_COMMITTING:
        if message_id is None or key_commitment is None:
            raise ValueError("V3 ranges need the message id and the key commitment")
        return verified_v3_content_key(data_key, message_id, key_commitment), V3_CONTENT_IV
    if algorithm is ContentAlgorithm.AES_GCM:
        if iv is None:
            raise ValueError("V2 ranges need the content IV")
        return data_key, iv
    raise ValueError("ranged reads are only possible for AES-GCM objects")
