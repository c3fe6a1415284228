"""The narrow contract every master-key backend implements.

A backend knows nothing of KMS keys, states, aliases or ciphertext framing: it holds AES-256
key material, one object per *key-material id* (the 64-hex ``KeyMaterialId`` AWS shows), and
performs AES-256-GCM under it. GenerateDataKey, ReEncrypt, key states and the blob format are
written once, above the backends (``kms_service.operations``).

Backends raise only the errors below; the service maps them to AWS errors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

#: One byte in every ciphertext blob names the backend that holds its key material, so a blob
#: is never handed to the wrong backend.
BACKEND_CODES: dict[str, int] = {"software": 1, "pkcs11": 2}

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

    def create_material(self, material_id: str) -> None:
        """Create a fresh AES-256 key for ``material_id`` (64 lowercase hex).

        Idempotent: creating an id that exists keeps the existing material.
        Raises :class:`BackendUnavailableError`.
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
