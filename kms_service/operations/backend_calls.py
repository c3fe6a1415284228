"""Calling a key's backend for a private- or secret-key operation, with its errors mapped to
AWS's, and the per-process cache of public keys (immutable per key-material id)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from backends.base import (
    BackendUnavailableError,
    KeyBackend,
    MaterialNotFoundError,
    UnsupportedMechanismError,
)
from kms_service.domain.errors import (
    KeyUnavailableException,
    KmsError,
    KMSInvalidStateException,
    UnsupportedOperationException,
)
from kms_service.operations.context import Services
from kms_service.store import KeyRecord

T = TypeVar("T")

_public_keys: dict[tuple[str, str], tuple[bytes, PublicKeyTypes]] = {}
_public_keys_lock = threading.Lock()


def current_material(key: KeyRecord) -> str:
    """The key's current material id. Raises :class:`KeyUnavailableException` if it has none."""
    if key.current_material_id is None:
        raise KeyUnavailableException(f"{key.arn} has no key material.")
    return key.current_material_id


def unavailable(key: KeyRecord) -> KmsError:
    """The error for a key whose backend cannot serve: a key in a custom key store is
    Unavailable, which AWS answers with KMSInvalidStateException (docs/custom-key-stores.md);
    others get KeyUnavailableException."""
    if key.backend.startswith("cks-"):
        return KMSInvalidStateException(f"{key.arn} is unavailable.")
    return KeyUnavailableException(f"{key.arn} is unavailable.")


def call_backend(key: KeyRecord, backend: KeyBackend, call: Callable[[], T]) -> T:
    """Run ``call`` (a backend operation for ``key``), mapping an unavailable backend or lost
    material to :class:`KeyUnavailableException` and an undeclared mechanism to
    :class:`UnsupportedOperationException`. Other backend errors pass through for the
    operation to map (a failed decryption, a rejected peer key)."""
    try:
        return call()
    except (BackendUnavailableError, MaterialNotFoundError):
        raise unavailable(key) from None
    except UnsupportedMechanismError:
        raise UnsupportedOperationException(
            f"{key.key_spec} is not supported by the {backend.name} key store of this mock-kms."
        ) from None


def public_key(services: Services, key: KeyRecord) -> tuple[bytes, PublicKeyTypes]:
    """The DER SubjectPublicKeyInfo of ``key``'s current material and its loaded form,
    fetched from the backend once per process (a key pair never changes under its id)."""
    material_id = current_material(key)
    cache_key = (key.backend, material_id)
    cached = _public_keys.get(cache_key)
    if cached is not None:
        return cached
    backend = services.backend(key.backend)
    der = call_backend(key, backend, lambda: backend.public_key(material_id))
    loaded = (der, serialization.load_der_public_key(der))
    with _public_keys_lock:
        _public_keys[cache_key] = loaded
    return loaded
