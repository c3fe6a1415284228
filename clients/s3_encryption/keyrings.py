"""Keyrings: where data keys come from and how they are wrapped (CSE-KMS, CSE-C).

* :class:`KmsKeyring`: ``GenerateDataKey`` / ``Decrypt`` on any object shaped like a boto3 KMS
  client (boto3 itself, or the project's ``clients.kms.KmsClient``).
* :class:`AesGcmKeyring`: the caller's AES-256 master key, AES-GCM wrap as Java/Ruby write it.
* :class:`RsaOaepKeyring`: the caller's RSA key pair, RSA-OAEP-SHA1 of the "pseudo data key".

Each keyring also unwraps the legacy wraps of its family (``kms``, ``AESWrap``, ``AES``,
``RSA``); the client only lets those through behind ``allow_legacy_formats``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import padding as symmetric_padding
from cryptography.hazmat.primitives.asymmetric import padding as asymmetric_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap

from clients.s3_encryption.errors import (
    EncryptionContextMismatchError,
    InvalidEncryptionContextError,
    KeyringError,
    TamperedMetadataError,
    WrongKeyError,
)
from clients.s3_encryption.formats import (
    DATA_KEY_LENGTH,
    GCM_IV_LENGTH,
    GCM_TAG_LENGTH,
    LEGACY_KMS_CONTEXT_KEY,
    RESERVED_CONTEXT_KEY,
    ContentAlgorithm,
    WrapAlgorithm,
)
from clients.s3_encryption.metadata import Envelope

AES_GCM_WRAPPED_KEY_LENGTH = GCM_IV_LENGTH + DATA_KEY_LENGTH + GCM_TAG_LENGTH  # 60
_AES_ECB_WRAPPED_KEY_LENGTH = 48
# KMS answers that mean "this key cannot open this blob": report them as a wrong key.
_WRONG_KEY_CODES = frozenset(
    {
        "IncorrectKeyException",
        "InvalidCiphertextException",
        "NotFoundException",
        "AccessDeniedException",
        "InvalidKeyUsageException",
    }
)


@dataclass(frozen=True)
class DataKey:
    """A fresh data key: the plaintext (never stored) and how to store its wrapped form."""

    plaintext: bytes = field(repr=False)
    encrypted: bytes = field(repr=False)
    wrap_algorithm: WrapAlgorithm
    materials_description: Mapping[str, str] = field(default_factory=dict)


class Keyring(Protocol):
    """What the encrypting client needs from a keyring."""

    def wrap_data_key(
        self, content_algorithm: ContentAlgorithm, encryption_context: Mapping[str, str]
    ) -> DataKey:
        """Create a 32-byte data key for ``content_algorithm`` and wrap it.

        Raises InvalidEncryptionContextError or KeyringError.
        """
        ...

    def unwrap_data_key(self, envelope: Envelope, encryption_context: Mapping[str, str]) -> bytes:
        """Return the plaintext data key of ``envelope``.

        Raises WrongKeyError, EncryptionContextMismatchError, InvalidEncryptionContextError,
        TamperedMetadataError or KeyringError.
        """
        ...


class KmsDataKeyClient(Protocol):
    """The two boto3 KMS client methods this keyring calls (keyword arguments only)."""

    def generate_data_key(self, **kwargs: Any) -> Any:
        """boto3 ``KMS.Client.generate_data_key``."""
        ...

    def decrypt(self, **kwargs: Any) -> Any:
        """boto3 ``KMS.Client.decrypt``."""
        ...


def validate_encryption_context(encryption_context: Mapping[str, str]) -> dict[str, str]:
    """Check a caller's encryption context as the official clients do; return a plain copy.

    Raises InvalidEncryptionContextError if a key or value is not an ASCII string (S3 metadata
    cannot carry anything else) or if the reserved ``aws:x-amz-cek-alg`` key is used.
    """
    checked: dict[str, str] = {}
    for key, value in encryption_context.items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidEncryptionContextError("encryption context keys and values must be str")
        if not (key.isascii() and value.isascii()):
            raise InvalidEncryptionContextError(
                f"encryption context entry {key!r} is not ASCII; S3 metadata cannot hold it"
            )
        if key == RESERVED_CONTEXT_KEY:
            raise InvalidEncryptionContextError(
                f"{RESERVED_CONTEXT_KEY} is reserved for the S3 encryption client"
            )
        checked[key] = value
    return checked


def aws_error_code(exc: BaseException) -> str | None:
    """The AWS error name of a boto3 ``ClientError`` or a thin-client KMS error, else None."""
    code = getattr(exc, "code", None)
    if isinstance(code, str):
        return code
    response = getattr(exc, "response", None)
    if isinstance(response, Mapping):
        error = response.get("Error")
        if isinstance(error, Mapping) and isinstance(error.get("Code"), str):
            return str(error["Code"])
    return None


def _check_data_key(data_key: object, source: str) -> bytes:
    if not isinstance(data_key, bytes | bytearray) or len(data_key) != DATA_KEY_LENGTH:
        raise KeyringError(f"{source} did not return a {DATA_KEY_LENGTH}-byte data key")
    return bytes(data_key)


def _require_no_context(encryption_context: Mapping[str, str], keyring: str) -> None:
    # Raw keyrings have nowhere to bind a context: silently dropping it (as Java does, with a
    # warning) would let a caller believe it is checked on read.
    if encryption_context:
        raise InvalidEncryptionContextError(
            f"{keyring} binds no encryption context; only KMS keyrings do. "
            "Use the keyring's materials_description to label keys instead."
        )


class KmsKeyring:
    """CSE-KMS: data keys from KMS ``GenerateDataKey``, unwrapped with ``Decrypt``.

    The KMS encryption context is the caller's context plus ``aws:x-amz-cek-alg`` (the content
    suite), stored with the object; on read the caller must give the same context.
    ``key_id=None`` makes a decrypt-only keyring that lets KMS pick the key from the blob.
    """

    def __init__(self, kms_client: KmsDataKeyClient, key_id: str | None) -> None:
        self._kms = kms_client
        self._key_id = key_id

    @property
    def key_id(self) -> str | None:
        """The configured KMS key id, ARN or alias (None for a decrypt-any keyring)."""
        return self._key_id

    def wrap_data_key(
        self, content_algorithm: ContentAlgorithm, encryption_context: Mapping[str, str]
    ) -> DataKey:
        """Call GenerateDataKey(AES_256) with the S3EC context. Raises KeyringError on failure."""
        if self._key_id is None:
            raise KeyringError("this KMS keyring has no key id: it can only decrypt")
        context = validate_encryption_context(encryption_context)
        context[RESERVED_CONTEXT_KEY] = content_algorithm.value
        try:
            response = self._kms.generate_data_key(
                KeyId=self._key_id, KeySpec="AES_256", EncryptionContext=context
            )
        except Exception as exc:
            code = aws_error_code(exc)
            if code is None:
                raise
            raise KeyringError(
                f"KMS GenerateDataKey with key {self._key_id!r} failed: {code}: {exc}", code=code
            ) from exc
        plaintext = _check_data_key(response.get("Plaintext"), "KMS GenerateDataKey")
        encrypted = response.get("CiphertextBlob")
        if not isinstance(encrypted, bytes | bytearray) or not encrypted:
            raise KeyringError("KMS GenerateDataKey returned no CiphertextBlob")
        return DataKey(plaintext, bytes(encrypted), WrapAlgorithm.KMS_CONTEXT, context)

    def unwrap_data_key(self, envelope: Envelope, encryption_context: Mapping[str, str]) -> bytes:
        """Check the context, then call KMS Decrypt with the stored context.

        Raises EncryptionContextMismatchError before any KMS call if the contexts differ,
        TamperedMetadataError if the stored suite label disagrees with the content algorithm,
        WrongKeyError if KMS refuses the blob with this key.
        """
        context = validate_encryption_context(encryption_context)
        stored = dict(envelope.materials_description)
        if envelope.wrap_algorithm is WrapAlgorithm.KMS_CONTEXT:
            comparable = {
                k: v
                for k, v in stored.items()
                if k not in (RESERVED_CONTEXT_KEY, LEGACY_KMS_CONTEXT_KEY)
            }
            if comparable != context:
                differing = sorted(set(comparable.items()) ^ set(context.items()))
                raise EncryptionContextMismatchError(
                    "encryption context does not match the one stored with the object "
                    f"(differing keys: {sorted({k for k, _ in differing})})"
                )
            # Anti-downgrade (Go, Ruby): the suite KMS bound must be the suite in use.
            if stored.get(RESERVED_CONTEXT_KEY) != envelope.content_algorithm.value:
                raise TamperedMetadataError(
                    f"stored {RESERVED_CONTEXT_KEY} does not name the object's content "
                    f"algorithm {envelope.content_algorithm.value!r}: tampered"
                )
        elif envelope.wrap_algorithm is WrapAlgorithm.KMS:
            if context:
                raise InvalidEncryptionContextError(
                    "legacy 'kms' wrapped objects bind no caller encryption context"
                )
        else:
            raise WrongKeyError(
                f"data key is wrapped with {envelope.wrap_algorithm.value!r}, not by KMS"
            )
        request: dict[str, Any] = {
            "CiphertextBlob": envelope.encrypted_data_key,
            "EncryptionContext": stored,
        }
        if self._key_id is not None:
            request["KeyId"] = self._key_id
        try:
            response = self._kms.decrypt(**request)
        except Exception as exc:
            code = aws_error_code(exc)
            if code is None:
                raise
            error = WrongKeyError if code in _WRONG_KEY_CODES else KeyringError
            raise error(
                f"KMS Decrypt of the data key failed with {code}: wrong KMS key "
                f"({self._key_id or 'any'}), or the envelope was tampered with",
                code=code,
            ) from exc
        return _check_data_key(response.get("Plaintext"), "KMS Decrypt")


def aes_gcm_wrap(
    wrapping_key: bytes,
    data_key: bytes,
    content_algorithm: ContentAlgorithm,
    *,
    iv: bytes | None = None,
) -> bytes:
    """Java's AES/GCM key wrap: ``iv(12) || AES-GCM(wrapping_key, iv, data_key, aad) || tag``.

    The AAD is the content suite string (``"AES/GCM/NoPadding"`` for V2, ``"115"`` for V3).
    ``iv`` is for known-answer tests only.
    """
    iv = os.urandom(GCM_IV_LENGTH) if iv is None else iv
    return iv + AESGCM(wrapping_key).encrypt(iv, data_key, content_algorithm.wire_bytes)


def aes_gcm_unwrap(
    wrapping_key: bytes, wrapped: bytes, content_algorithm: ContentAlgorithm
) -> bytes:
    """Inverse of :func:`aes_gcm_wrap`. Raises WrongKeyError if the tag does not verify."""
    if len(wrapped) != AES_GCM_WRAPPED_KEY_LENGTH:
        raise WrongKeyError(f"AES/GCM wrapped key must be {AES_GCM_WRAPPED_KEY_LENGTH} bytes")
    try:
        return AESGCM(wrapping_key).decrypt(
            wrapped[:GCM_IV_LENGTH], wrapped[GCM_IV_LENGTH:], content_algorithm.wire_bytes
        )
    except InvalidTag:
        raise WrongKeyError(
            "the AES master key cannot unwrap this object's data key (wrong key, or the "
            "wrapped key / algorithm metadata was tampered with)"
        ) from None


class AesGcmKeyring:
    """CSE-C with the caller's AES-256 master key (``AES/GCM`` in V2, ``02`` in V3).

    ``materials_description`` is stored with the object as a label (never secret, not
    authenticated); it does not take part in decryption.
    """

    def __init__(
        self, wrapping_key: bytes, materials_description: Mapping[str, str] | None = None
    ) -> None:
        if len(wrapping_key) != 32:
            raise ValueError("the AES master key must be 32 bytes (AES-256)")
        self._wrapping_key = bytes(wrapping_key)
        self._materials_description = validate_encryption_context(materials_description or {})

    def __repr__(self) -> str:
        return f"AesGcmKeyring(materials_description={self._materials_description!r})"

    def wrap_data_key(
        self, content_algorithm: ContentAlgorithm, encryption_context: Mapping[str, str]
    ) -> DataKey:
        """Draw a random data key and AES-GCM-wrap it. Raises InvalidEncryptionContextError."""
        _require_no_context(encryption_context, "an AES keyring")
        data_key = os.urandom(DATA_KEY_LENGTH)
        wrapped = aes_gcm_wrap(self._wrapping_key, data_key, content_algorithm)
        return DataKey(data_key, wrapped, WrapAlgorithm.AES_GCM, dict(self._materials_description))

    def unwrap_data_key(self, envelope: Envelope, encryption_context: Mapping[str, str]) -> bytes:
        """Unwrap ``AES/GCM`` (and legacy ``AESWrap`` / ``AES``). Raises WrongKeyError."""
        _require_no_context(encryption_context, "an AES keyring")
        wrapped = envelope.encrypted_data_key
        wrap = envelope.wrap_algorithm
        if wrap is WrapAlgorithm.AES_GCM:
            return aes_gcm_unwrap(self._wrapping_key, wrapped, envelope.content_algorithm)
        if wrap is WrapAlgorithm.AES_WRAP:
            try:
                return _check_data_key(
                    aes_key_unwrap(self._wrapping_key, wrapped), "AESWrap unwrap"
                )
            except (InvalidUnwrap, ValueError, KeyringError):
                raise WrongKeyError("the AES master key cannot unwrap this AESWrap key") from None
        if wrap is WrapAlgorithm.AES:
            return self._unwrap_aes_ecb(wrapped)
        raise WrongKeyError(f"data key is wrapped with {wrap.value!r}, not with an AES key")

    def _unwrap_aes_ecb(self, wrapped: bytes) -> bytes:
        # V1 "AES" = JCE AES/ECB/PKCS5Padding of the 32-byte key: 48 bytes.
        if len(wrapped) != _AES_ECB_WRAPPED_KEY_LENGTH:
            raise WrongKeyError("legacy AES-wrapped key must be 48 bytes")
        decryptor = Cipher(algorithms.AES(self._wrapping_key), modes.ECB()).decryptor()  # noqa: S305 - legacy V1 wrap, read-only
        unpadder = symmetric_padding.PKCS7(128).unpadder()
        try:
            padded = decryptor.update(wrapped) + decryptor.finalize()
            data_key = unpadder.update(padded) + unpadder.finalize()
        except ValueError:
            raise WrongKeyError("the AES master key cannot unwrap this legacy key") from None
        if len(data_key) != DATA_KEY_LENGTH:
            raise WrongKeyError("the AES master key cannot unwrap this legacy key")
        return data_key


_OAEP_SHA1 = asymmetric_padding.OAEP(
    mgf=asymmetric_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303 - the S3EC wire format
    algorithm=hashes.SHA1(),  # noqa: S303
    label=None,
)


class RsaOaepKeyring:
    """CSE-C with the caller's RSA key pair (``RSA-OAEP-SHA1`` in V2, ``22`` in V3).

    The RSA plaintext is the pseudo data key ``len(key) || key || suite string``, which binds
    the content algorithm. A keyring with only a public key can encrypt; decrypting needs the
    private key.
    """

    def __init__(
        self,
        *,
        public_key: rsa.RSAPublicKey | None = None,
        private_key: rsa.RSAPrivateKey | None = None,
        materials_description: Mapping[str, str] | None = None,
    ) -> None:
        if public_key is None and private_key is None:
            raise ValueError("give an RSA public key, a private key, or both")
        self._private_key = private_key
        self._public_key = public_key or (private_key.public_key() if private_key else None)
        self._materials_description = validate_encryption_context(materials_description or {})

    def wrap_data_key(
        self, content_algorithm: ContentAlgorithm, encryption_context: Mapping[str, str]
    ) -> DataKey:
        """Draw a random data key and RSA-OAEP-wrap it. Raises InvalidEncryptionContextError."""
        _require_no_context(encryption_context, "an RSA keyring")
        assert self._public_key is not None  # guaranteed by __init__
        data_key = os.urandom(DATA_KEY_LENGTH)
        pseudo_data_key = bytes([len(data_key)]) + data_key + content_algorithm.wire_bytes
        wrapped = self._public_key.encrypt(pseudo_data_key, _OAEP_SHA1)
        return DataKey(
            data_key, wrapped, WrapAlgorithm.RSA_OAEP_SHA1, dict(self._materials_description)
        )

    def unwrap_data_key(self, envelope: Envelope, encryption_context: Mapping[str, str]) -> bytes:
        """Unwrap ``RSA-OAEP-SHA1`` (and legacy PKCS#1 v1.5 ``RSA``).

        Raises WrongKeyError if the private key cannot decrypt it, TamperedMetadataError if
        the suite bound in the pseudo data key is not the object's content algorithm.
        """
        _require_no_context(encryption_context, "an RSA keyring")
        if self._private_key is None:
            raise KeyringError("this RSA keyring has no private key: it can only encrypt")
        wrap = envelope.wrap_algorithm
        if wrap is WrapAlgorithm.RSA_OAEP_SHA1:
            try:
                pseudo = self._private_key.decrypt(envelope.encrypted_data_key, _OAEP_SHA1)
            except ValueError:
                raise WrongKeyError("the RSA private key cannot unwrap this data key") from None
            length = pseudo[0] if pseudo else 0
            data_key, suite = pseudo[1 : 1 + length], pseudo[1 + length :]
            if suite != envelope.content_algorithm.wire_bytes:
                raise TamperedMetadataError(
                    "RSA-wrapped key was made for another content algorithm: tampered"
                )
            return _check_data_key(data_key, "RSA-OAEP unwrap")
        if wrap is WrapAlgorithm.RSA:
            try:
                data_key = self._private_key.decrypt(
                    envelope.encrypted_data_key, asymmetric_padding.PKCS1v15()
                )
            except ValueError:
                raise WrongKeyError("the RSA private key cannot unwrap this data key") from None
            return _check_data_key(data_key, "legacy RSA unwrap")
        raise WrongKeyError(f"data key is wrapped with {wrap.value!r}, not with an RSA key")
