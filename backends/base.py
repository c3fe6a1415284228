"""The narrow contract every master-key backend implements.

A backend knows nothing of KMS keys, states, aliases or ciphertext framing: it holds key
material, one object per *key-material id* (the 64-hex ``KeyMaterialId`` AWS shows), of one
AWS key spec (``SYMMETRIC_DEFAULT``, ``RSA_2048``, ``ECC_NIST_P256``, ``HMAC_256``, ...), and
performs the private-key or secret-key operations under it: AES-256-GCM, signing, RSA-OAEP
decryption, HMAC, ECDH, unwrapping imported material. GenerateDataKey, ReEncrypt, key states,
the blob format, digests of RAW messages and public-key operations (Verify, RSA encryption) are
written once, above the backends (``kms_service.operations``).

What a backend serves is declared in :attr:`KeyBackend.capabilities`, never discovered: the
service refuses the rest with an AWS-shaped error before calling the backend. A backend that is
called for something it does not declare raises :class:`UnsupportedMechanismError`.

Backends raise only the errors below; the service maps them to AWS errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: One byte in every ciphertext blob names the backend that holds its key material, so a blob
#: is never handed to the wrong backend.
BACKEND_CODES: dict[str, int] = {"software": 1, "pkcs11": 2}
#: Keys in custom key stores name their store (``cks-`` + id) as their backend; their blobs
#: carry the pkcs11 code, and the key id in the blob leads to the key, whose record names the
#: store (docs/custom-key-stores.md), so blobs made before key stores existed stay valid.
CUSTOM_KEY_STORE_PREFIX = "cks-"


def backend_code(backend_name: str) -> int | None:
    """The blob code of the backend ``backend_name`` (a key's ``backend``), or None."""
    if backend_name.startswith(CUSTOM_KEY_STORE_PREFIX):
        return BACKEND_CODES["pkcs11"]
    return BACKEND_CODES.get(backend_name)


NONCE_SIZE = 12
TAG_SIZE = 16


class BackendError(Exception):
    """Base of every backend error. Messages never contain key material."""


class MaterialNotFoundError(BackendError):
    """The key material id is unknown to this backend (never created, or destroyed)."""


class DecryptionFailedError(BackendError):
    """Authentication failed: wrong key, wrong associated data, or tampered ciphertext."""


class BackendUnavailableError(BackendError):
    """The backend cannot serve right now (HSM gone, token removed); a retry may succeed."""


class UnsupportedMechanismError(BackendError):
    """The backend does not serve this key spec or algorithm (see its capabilities)."""


class MaterialRejectedError(BackendError):
    """Imported or seeded material is not a valid key of the stated spec, or the id already
    holds other material. The message says which, without the material."""


@dataclass(frozen=True)
class BackendCapabilities:
    """What a backend serves, in AWS's names. The service checks these before each call."""

    #: Key specs it can create or import (``SYMMETRIC_DEFAULT``, ``RSA_2048``, ``HMAC_256``...).
    key_specs: frozenset[str]
    #: Signing algorithms it can run (``RSASSA_PSS_SHA_256``, ``ECDSA_SHA_256``...).
    signing_algorithms: frozenset[str] = frozenset()
    #: Asymmetric decryption algorithms (``RSAES_OAEP_SHA_1``, ``RSAES_OAEP_SHA_256``).
    encryption_algorithms: frozenset[str] = frozenset()
    #: MAC algorithms (``HMAC_SHA_256``...).
    mac_algorithms: frozenset[str] = frozenset()
    #: Key specs it can run ECDH with (``ECC_NIST_P256``...).
    key_agreement_specs: frozenset[str] = frozenset()
    #: Import wrapping algorithms it can unwrap (``RSAES_OAEP_SHA_256``,
    #: ``RSA_AES_KEY_WRAP_SHA_256``...) and wrapping key specs (``RSA_2048``...).
    wrapping_algorithms: frozenset[str] = frozenset()
    wrapping_key_specs: frozenset[str] = frozenset()
    #: Whether :meth:`KeyBackend.export_material` can return material (never for an HSM).
    exportable: bool = False
    #: Whether keys of several regions may use the same material objects (the replicas of a
    #: multi-Region key). True for a backend every region of the process reaches: the
    #: software keystore, and a PKCS#11 token, which holds the material for all of them.
    shares_material_across_regions: bool = True


@dataclass(frozen=True)
class BackendHealth:
    """What ``/healthz`` reports about a backend."""

    name: str
    ok: bool
    detail: dict[str, str | int | bool] = field(default_factory=dict)


@runtime_checkable
class KeyBackend(Protocol):
    """Master-key cryptography. Implementations must be safe to call from several threads."""

    @property
    def name(self) -> str:
        """``software`` or ``pkcs11``: the key of :data:`BACKEND_CODES`."""
        ...

    @property
    def capabilities(self) -> BackendCapabilities:
        """What this backend serves; constant for the life of the object."""
        ...

    def create_material(self, material_id: str, key_spec: str = "SYMMETRIC_DEFAULT") -> None:
        """Create fresh material of ``key_spec`` for ``material_id`` (64 lowercase hex): an
        AES-256 key, an RSA or EC key pair, or an HMAC key of the spec's length, generated
        inside the backend.

        Idempotent: creating an id that exists keeps the existing material.
        Raises :class:`UnsupportedMechanismError`, :class:`BackendUnavailableError`.
        """
        ...

    def import_material(self, material_id: str, key_spec: str, material: bytes) -> None:
        """Keep caller-supplied plaintext ``material`` under ``material_id``: the raw key bytes
        for ``SYMMETRIC_DEFAULT`` (32) and ``HMAC_*`` (the spec's length), a PKCS#8 DER private
        key for asymmetric specs. Used by seed files and by imports the backend cannot unwrap
        itself.

        Idempotent for the same bytes. Raises :class:`MaterialRejectedError` (wrong length or
        kind, or the id holds other material), :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def export_material(self, material_id: str) -> bytes:
        """The plaintext material, in :meth:`import_material`'s form (``mock-kms export
        --include-material``, seed checks). Only when ``capabilities.exportable``.

        Raises :class:`UnsupportedMechanismError`, :class:`MaterialNotFoundError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def encrypt(self, material_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM encrypt; returns ``ciphertext || 16-byte tag``.

        The caller supplies a fresh 12-byte ``nonce``.
        Raises :class:`MaterialNotFoundError`, :class:`BackendUnavailableError`.
        """
        ...

    def decrypt(self, material_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        """AES-256-GCM decrypt and verify ``ciphertext || tag``.

        Raises :class:`DecryptionFailedError` on any authentication failure,
        :class:`MaterialNotFoundError`, :class:`BackendUnavailableError`.
        """
        ...

    def public_key(self, material_id: str) -> bytes:
        """The DER ``SubjectPublicKeyInfo`` of an asymmetric key pair.

        Raises :class:`MaterialNotFoundError`, :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def sign(self, material_id: str, algorithm: str, payload: bytes) -> bytes:
        """Sign with the private key under AWS signing ``algorithm``.

        ``payload`` is the message digest for the RSASSA_*, ECDSA_* and ``ED25519_PH_SHA_512``
        algorithms (the caller hashes RAW messages) and the message itself for
        ``ED25519_SHA_512``. Returns the signature as AWS returns it: DER ``ECDSA-Sig-Value`` for
        ECDSA, 64 raw bytes for Ed25519, the raw RSA signature for RSA.
        Raises :class:`MaterialNotFoundError`, :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def decrypt_asymmetric(self, material_id: str, algorithm: str, ciphertext: bytes) -> bytes:
        """RSA-OAEP decrypt (``RSAES_OAEP_SHA_1`` or ``RSAES_OAEP_SHA_256``, MGF1 with the same
        hash, no label).

        Raises :class:`DecryptionFailedError` for any ciphertext that does not decrypt,
        :class:`MaterialNotFoundError`, :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def generate_mac(self, material_id: str, algorithm: str, message: bytes) -> bytes:
        """HMAC of ``message`` under ``algorithm`` (``HMAC_SHA_224`` ... ``HMAC_SHA_512``).

        Raises :class:`MaterialNotFoundError`, :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def derive_shared_secret(self, material_id: str, peer_public_key: bytes) -> bytes:
        """ECDH (``ECDH``, cofactor-less) of the private key with the DER
        ``SubjectPublicKeyInfo`` ``peer_public_key``: the raw shared secret (the x coordinate).

        Raises :class:`MaterialRejectedError` for a peer key that is not a point of the same
        curve, :class:`MaterialNotFoundError`, :class:`UnsupportedMechanismError`,
        :class:`BackendUnavailableError`.
        """
        ...

    def create_wrapping_key(self, wrapping_key_id: str, key_spec: str) -> bytes:
        """Create an RSA key pair (``RSA_2048``/``3072``/``4096``) for importing material under
        ``wrapping_key_id`` (64 lowercase hex) and return its DER ``SubjectPublicKeyInfo``.

        Raises :class:`UnsupportedMechanismError`, :class:`BackendUnavailableError`.
        """
        ...

    def unwrap_material(
        self,
        material_id: str,
        key_spec: str,
        wrapping_key_id: str,
        wrapping_algorithm: str,
        wrapped: bytes,
    ) -> None:
        """Unwrap ``wrapped`` (``RSAES_OAEP_SHA_*``, or ``RSA_AES_KEY_WRAP_SHA_*``: an OAEP-
        wrapped ephemeral AES key followed by RFC 5649 key wrap) with the wrapping key and keep
        the result as ``material_id``, inside the backend (the plaintext never leaves an HSM).

        Raises :class:`DecryptionFailedError` when ``wrapped`` does not unwrap,
        :class:`MaterialRejectedError` when what it holds is not a key of ``key_spec`` or the
        id holds other material, :class:`MaterialNotFoundError` (no such wrapping key),
        :class:`UnsupportedMechanismError`, :class:`BackendUnavailableError`.
        """
        ...

    def destroy_wrapping_key(self, wrapping_key_id: str) -> None:
        """Destroy a wrapping key pair. Destroying an unknown id is not an error."""
        ...

    def destroy_material(self, material_id: str) -> None:
        """Destroy the material for good. Destroying an unknown id is not an error."""
        ...

    def generate_random(self, size: int) -> bytes:
        """``size`` cryptographically secure random bytes.

        Raises :class:`BackendUnavailableError`.
        """
        ...

    def health(self) -> BackendHealth:
        """A cheap liveness check; never raises."""
        ...

    def close(self) -> None:
        """Release process-local resources (sessions, connections)."""
        ...


SYMMETRIC_ONLY = BackendCapabilities(key_specs=frozenset({"SYMMETRIC_DEFAULT"}))


class SymmetricOnlyOperations:
    """The asymmetric, HMAC, ECDH and import operations of a backend whose capabilities
    declare symmetric keys only: each raises :class:`UnsupportedMechanismError` (the service
    checks the capabilities first, so these are reached only by a caller that did not)."""

    def _unsupported(self, what: str) -> UnsupportedMechanismError:
        return UnsupportedMechanismError(f"{type(self).__name__} does not serve {what}")

    def public_key(self, material_id: str) -> bytes:
        raise self._unsupported("asymmetric keys")

    def sign(self, material_id: str, algorithm: str, payload: bytes) -> bytes:
        raise self._unsupported(algorithm)

    def decrypt_asymmetric(self, material_id: str, algorithm: str, ciphertext: bytes) -> bytes:
        raise self._unsupported(algorithm)

    def generate_mac(self, material_id: str, algorithm: str, message: bytes) -> bytes:
        raise self._unsupported(algorithm)

    def derive_shared_secret(self, material_id: str, peer_public_key: bytes) -> bytes:
        raise self._unsupported("key agreement")

    def create_wrapping_key(self, wrapping_key_id: str, key_spec: str) -> bytes:
        raise self._unsupported("key import")

    def unwrap_material(
        self,
        material_id: str,
        key_spec: str,
        wrapping_key_id: str,
        wrapping_algorithm: str,
        wrapped: bytes,
    ) -> None:
        raise self._unsupported(wrapping_algorithm)

    def destroy_wrapping_key(self, wrapping_key_id: str) -> None:
        return None
