"""RSA-OAEP encryption with asymmetric KMS keys: Encrypt, Decrypt and ReEncrypt's halves.

The ciphertext is the raw RSA-OAEP ciphertext, as AWS returns it, so data encrypted offline
with the public key (GetPublicKey) decrypts here, and Decrypt needs the ``KeyId`` and the
``EncryptionAlgorithm``. Encryption is a public-key operation and runs here, above the backends;
decryption runs in the key's backend. The rules are in docs/key-types.md.
"""

from __future__ import annotations

from collections.abc import Mapping

from cryptography.hazmat.primitives.asymmetric import padding, rsa

from backends.base import DecryptionFailedError
from backends.key_specs import OAEP_HASHES, oaep_max_plaintext
from kms_service.domain.ciphertext import MalformedCiphertextError, decode_blob
from kms_service.domain.errors import (
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    ValidationException,
)
from kms_service.operations.backend_calls import call_backend, current_material, public_key
from kms_service.operations.context import Services
from kms_service.operations.key_kinds import require_backend_algorithm
from kms_service.store import KeyRecord

INCORRECT_KEY_MESSAGE = (
    "The key ID in the request does not identify a CMK that can perform this operation."
)


def require_rsa_algorithm(key: KeyRecord, algorithm: str | None) -> str:
    """The RSA-OAEP algorithm for ``key`` (whose usage is ENCRYPT_DECRYPT); an omitted
    algorithm means SYMMETRIC_DEFAULT, as the API's default, and is refused like any other
    that does not fit. Raises :class:`InvalidKeyUsageException`."""
    chosen = algorithm or "SYMMETRIC_DEFAULT"
    if chosen not in OAEP_HASHES:
        raise InvalidKeyUsageException(
            f"Algorithm {chosen} is incompatible with key spec {key.key_spec}."
        )
    return chosen


def refuse_context(context: Mapping[str, str] | None) -> None:
    """Asymmetric keys take no encryption context (AWS: "You cannot specify an encryption
    context in a cryptographic operation with an asymmetric KMS key")."""
    if context:
        raise ValidationException(
            "EncryptionContext is not supported for asymmetric KMS keys. "
            "Remove the EncryptionContext parameter."
        )


def _oaep(algorithm: str) -> padding.OAEP:
    digest = OAEP_HASHES[algorithm]
    return padding.OAEP(mgf=padding.MGF1(digest()), algorithm=digest(), label=None)


def rsa_encrypt(services: Services, key: KeyRecord, algorithm: str, plaintext: bytes) -> bytes:
    """RSA-OAEP encrypt ``plaintext`` with ``key``'s public key, within AWS's limits.

    Raises :class:`ValidationException` for a plaintext over the limit (AWS's message),
    :class:`UnsupportedOperationException` if the key's backend does not declare the algorithm.
    """
    require_backend_algorithm(services.backend(key.backend), "encryption", algorithm)
    limit = oaep_max_plaintext(key.key_spec, algorithm)
    if len(plaintext) > limit:
        raise ValidationException(
            f"Algorithm {algorithm} and key spec {key.key_spec} cannot encrypt data larger "
            f"than {limit} bytes."
        )
    _, public = public_key(services, key)
    assert isinstance(public, rsa.RSAPublicKey)
    return public.encrypt(plaintext, _oaep(algorithm))


def rsa_decrypt(services: Services, key: KeyRecord, algorithm: str, ciphertext: bytes) -> bytes:
    """RSA-OAEP decrypt in the key's backend.

    A blob of this service's symmetric format that names another key is an
    :class:`IncorrectKeyException` (the caller named the wrong key); every other failure is
    the message-less :class:`InvalidCiphertextException`.
    """
    try:
        parsed = decode_blob(ciphertext)
    except MalformedCiphertextError:
        parsed = None
    if parsed is not None and parsed.key_id != key.key_id:
        raise IncorrectKeyException(INCORRECT_KEY_MESSAGE)
    backend = services.backend(key.backend)
    require_backend_algorithm(backend, "encryption", algorithm)
    material_id = current_material(key)
    try:
        return call_backend(
            key, backend, lambda: backend.decrypt_asymmetric(material_id, algorithm, ciphertext)
        )
    except DecryptionFailedError:
        raise InvalidCiphertextException() from None
