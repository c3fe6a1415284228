"""Imported key material after the import: check values, expiry, the key state it implies,
on-demand rotation to material imported as NEW_KEY_MATERIAL, and what ListKeyRotations shows.

AWS's rules (https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys-import-key-material.html):
the first material imported into an EXTERNAL key is permanently associated with it; a key is
usable only while every material associated with it is imported, and goes back to
``PendingImport`` when any of them is deleted or expires; single-Region symmetric keys may
take new material (``ImportType=NEW_KEY_MATERIAL``), which RotateKeyOnDemand makes current.
See docs/key-import.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from backends.base import BackendError, KeyBackend
from kms_service.domain.errors import (
    KeyUnavailableException,
    KMSInvalidStateException,
    UnsupportedOperationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import Services
from kms_service.store import ImportedMaterialRecord, KeyRecord

IMPORTED = "IMPORTED"
PENDING_IMPORT = "PENDING_IMPORT"
EXPIRES = "KEY_MATERIAL_EXPIRES"
DOES_NOT_EXPIRE = "KEY_MATERIAL_DOES_NOT_EXPIRE"
_CHECK_INPUT = b"mock-kms key check value"
#: The fixed nonce of the AES check value: it only ever encrypts the empty message under this
#: associated data, so it never meets a nonce of real data (those are random) in a way that
#: matters, and the same material always gives the same 16-byte tag.
_CHECK_NONCE = bytes(12)


def check_value(backend: KeyBackend, material_id: str, key_spec: str) -> bytes:
    """A value that identifies the material under ``material_id`` and reveals nothing of it:
    the AES-GCM tag of the empty message (symmetric keys), an HMAC of a constant (HMAC keys),
    or the SHA-256 of the public key (asymmetric keys). Raises :class:`BackendError`."""
    if key_spec == "SYMMETRIC_DEFAULT":
        return backend.encrypt(material_id, _CHECK_NONCE, b"", _CHECK_INPUT)
    if key_spec.startswith("HMAC_"):
        return backend.generate_mac(material_id, "HMAC_SHA_" + key_spec[5:], _CHECK_INPUT)
    return hashlib.sha256(backend.public_key(material_id)).digest()


def supports_new_material(key: KeyRecord) -> bool:
    """Whether AWS lets ``key`` take more than one imported material (and rotate to it)."""
    return key.key_spec == "SYMMETRIC_DEFAULT" and not key.multi_region


def summary_changes(key: KeyRecord, materials: list[ImportedMaterialRecord]) -> dict[str, Any]:
    """The ``keys`` columns that follow from ``materials``: the state (PendingImport while any
    associated material is not imported; Enabled again once all are, from PendingImport), the
    current material's ExpirationModel and the earliest ValidTo."""
    associated = [m for m in materials if not m.pending_rotation]
    current = next((m for m in associated if m.material_id == key.current_material_id), None)
    if current is None and associated:
        current = associated[-1]
    due = [m.valid_to for m in materials if m.import_state == IMPORTED and m.valid_to is not None]
    changes: dict[str, Any] = {
        "expiration_model": current.expiration_model if current is not None else None,
        "valid_to": min(due) if due else None,
    }
    complete = bool(associated) and all(m.import_state == IMPORTED for m in associated)
    if key.state != KeyState.PENDING_DELETION:
        if not complete:
            changes["state"] = KeyState.PENDING_IMPORT
        elif key.state == KeyState.PENDING_IMPORT:
            changes["state"] = KeyState.ENABLED
    return changes


def material_complete(services: Services, key: KeyRecord) -> bool:
    """Whether every material associated with the EXTERNAL ``key`` is imported (and there is
    some): the key can be used."""
    associated = [m for m in services.store.imported_materials(key) if not m.pending_rotation]
    return bool(associated) and all(m.import_state == IMPORTED for m in associated)


def destroy_imported(services: Services, key: KeyRecord, material: ImportedMaterialRecord) -> None:
    """Destroy one imported material in the backend and mark it PENDING_IMPORT; the caller
    holds the write transaction, so a failure leaves the material as it was."""
    try:
        services.backend(key.backend).destroy_material(material.material_id)
    except BackendError:
        raise KeyUnavailableException(f"{key.arn} is unavailable.") from None
    services.store.put_imported_material(
        replace(material, import_state=PENDING_IMPORT, valid_to=None)
    )


def expire_due_material(services: Services, key: KeyRecord, now: float) -> KeyRecord | None:
    """Delete the key's imported material whose ValidTo has passed, as AWS does when it
    expires, and put the key back in PendingImport (unless it is pending deletion).

    Applied lazily whenever the key is resolved, and for every key when the clock is advanced.
    Returns the key as it is afterwards (None if another request deleted it meanwhile).
    """
    with services.store.write():
        current = services.store.get_key(key.account_id, key.region, key.key_id)
        if current is None or current.valid_to is None or current.valid_to > now:
            return current
        materials = services.store.imported_materials(current)
        for material in materials:
            if (
                material.import_state == IMPORTED
                and material.valid_to is not None
                and material.valid_to <= now
            ):
                destroy_imported(services, current, material)
        materials = services.store.imported_materials(current)
        services.store.update_key(current, **summary_changes(current, materials))
        return services.store.get_key(key.account_id, key.region, key.key_id)


def rotate_to_imported(services: Services, key: KeyRecord) -> None:
    """RotateKeyOnDemand for an EXTERNAL key: the oldest material imported as
    NEW_KEY_MATERIAL becomes current. The caller holds the write transaction and has checked
    the state and the rotation limit.

    Raises :class:`UnsupportedOperationException` for keys that cannot rotate (asymmetric,
    HMAC, multi-Region) and AWS's :class:`KMSInvalidStateException` when nothing is pending.
    """
    if not supports_new_material(key):
        raise UnsupportedOperationException()
    pending = [m for m in services.store.imported_materials(key) if m.pending_rotation]
    if not pending:
        raise KMSInvalidStateException(
            f"No available key material pending rotation for the key: {key.arn}."
        )
    chosen = pending[0]
    services.store.add_material(key, chosen.material_id, services.clock.now(), "ON_DEMAND")
    services.store.put_imported_material(replace(chosen, pending_rotation=False))
    services.store.update_key(key, on_demand_rotations=key.on_demand_rotations + 1)
    rotated = services.store.get_key(key.account_id, key.region, key.key_id) or key
    services.store.update_key(
        rotated, **summary_changes(rotated, services.store.imported_materials(rotated))
    )


def rotation_details(
    services: Services, key: KeyRecord
) -> tuple[dict[str, dict[str, Any]], list[dict[str, Any]]]:
    """For ListKeyRotations of an EXTERNAL key: the import fields of each material (by id),
    and the entries of material pending rotation (listed with ``ALL_KEY_MATERIAL``)."""
    details: dict[str, dict[str, Any]] = {}
    pending: list[dict[str, Any]] = []
    for material in services.store.imported_materials(key):
        fields: dict[str, Any] = {
            "ImportState": material.import_state,
            "ExpirationModel": material.expiration_model,
        }
        if material.description:
            fields["KeyMaterialDescription"] = material.description
        if material.valid_to is not None:
            fields["ValidTo"] = material.valid_to
        details[material.material_id] = fields
        if material.pending_rotation:
            pending.append(
                {
                    "KeyId": key.key_id,
                    "KeyMaterialId": material.material_id,
                    "KeyMaterialState": "PENDING_ROTATION",
                    **fields,
                }
            )
    return details, pending
