"""Custom key store passwords at rest: wrapped under the root key, never kept in clear.

A ``KeyStorePassword`` (the token's user PIN, docs/custom-key-stores.md) is a secret like key
material, so it is stored the way the software keystore stores material: AES-256-GCM under the
root key with a fresh 12-byte nonce, the store id bound in as associated data so a wrapped
password copied to another store's row does not unwrap.
"""

from __future__ import annotations

import os

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

_NONCE_SIZE = 12
_AAD_PREFIX = b"mock-kms:custom-key-store-password:"


class PasswordUnwrapError(Exception):
    """The wrapped password does not open under this root key (another root key, or a
    tampered row). The message never contains the password."""


def wrap_password(root_key: bytes, store_id: str, password: str) -> tuple[bytes, bytes]:
    """``(nonce, wrapped)`` for ``password`` of key store ``store_id``."""
    nonce = os.urandom(_NONCE_SIZE)
    wrapped = AESGCM(root_key).encrypt(
        nonce, password.encode("utf-8"), _AAD_PREFIX + store_id.encode("ascii")
    )
    return nonce, wrapped


def unwrap_password(root_key: bytes, store_id: str, nonce: bytes, wrapped: bytes) -> str:
    """The password :func:`wrap_password` wrapped. Raises :class:`PasswordUnwrapError`."""
    try:
        plain = AESGCM(root_key).decrypt(nonce, wrapped, _AAD_PREFIX + store_id.encode("ascii"))
    except (InvalidTag, ValueError):
        raise PasswordUnwrapError(
            f"the password of custom key store {store_id} does not unwrap under this root key"
        ) from None
    return plain.decode("utf-8")
