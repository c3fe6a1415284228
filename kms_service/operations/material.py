"""Creating and destroying key material in the backends, in step with the store."""

from __future__ import annotations

import secrets

from backends.base import BackendError
from kms_service.domain.errors import KeyUnavailableException, KmsError
from kms_service.operations.context import Services


def new_material(services: Services, backend_name: str, key_spec: str = "SYMMETRIC_DEFAULT") -> str:
    """Create fresh key material of ``key_spec`` in a backend and return its id (64
    lowercase hex). The caller has checked that the backend declares the spec.

    Created before the metadata that refers to it is committed: a crash in between leaves an
    unreferenced object in the backend, never a key without material.
    """
    material_id = secrets.token_hex(32)
    backend = services.backend(backend_name)
    try:
        backend.create_material(material_id, key_spec)
    except BackendError:
        raise KeyUnavailableException("The key store is unavailable.") from None
    return material_id


def destroy_pending_material(services: Services) -> None:
    """Destroy, in the backends, material whose keys are gone from the store."""
    for material_id, backend_name in services.store.pending_destruction():
        backend = services.backends.get(backend_name)
        if backend is None and backend_name.startswith("cks-") and services.key_stores:
            # A custom key store's token (docs/custom-key-stores.md): only while connected;
            # otherwise the material waits for a later deletion or start.
            try:
                backend = services.key_stores.backend(backend_name)
            except KmsError:
                continue
        if backend is None:
            continue
        try:
            backend.destroy_material(material_id)
        except BackendError:
            continue  # retried at the next deletion or start
        with services.store.write():
            services.store.forget_destruction(material_id)
