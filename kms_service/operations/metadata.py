"""Rendering keys as AWS ``KeyMetadata``."""

from __future__ import annotations

from typing import Any

from kms_service.domain.key_states import KeyState
from kms_service.operations.key_kinds import (
    COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS,
    algorithm_fields,
)
from kms_service.store import KeyRecord

#: Keys on a non-default key store say so the way AWS keys in a custom key store do.
PKCS11_KEY_STORE_ID = "cks-mock-kms-pkcs11"


def key_metadata(key: KeyRecord) -> dict[str, Any]:
    """Every field AWS returns for a key of its kind, and none that it leaves out: one
    algorithm list chosen by key usage, and CurrentKeyMaterialId only for symmetric
    encryption keys (see docs/key-types.md)."""
    metadata: dict[str, Any] = {
        "AWSAccountId": key.account_id,
        "KeyId": key.key_id,
        "Arn": key.arn,
        "CreationDate": key.creation_date,
        "Enabled": key.state == KeyState.ENABLED,
        "Description": key.description,
        "KeyUsage": key.key_usage,
        "KeyState": key.state,
        "Origin": key.origin,
        "KeyManager": key.key_manager,
        "CustomerMasterKeySpec": key.key_spec,
        "KeySpec": key.key_spec,
        **algorithm_fields(key.key_spec, key.key_usage),
        "MultiRegion": key.multi_region,
    }
    if key.key_spec not in COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS:
        # The deprecated member's enum has no Ed25519 or ML-DSA value.
        del metadata["CustomerMasterKeySpec"]
    if key.state == KeyState.PENDING_DELETION and key.deletion_date is not None:
        metadata["DeletionDate"] = key.deletion_date
    if key.current_material_id and key.key_spec == "SYMMETRIC_DEFAULT":
        metadata["CurrentKeyMaterialId"] = key.current_material_id
    if key.origin == "EXTERNAL":
        # Imported material: its expiration, once some has been imported.
        if key.expiration_model is not None:
            metadata["ExpirationModel"] = key.expiration_model
        if key.valid_to is not None:
            metadata["ValidTo"] = key.valid_to
    if key.backend == "pkcs11":
        metadata["CustomKeyStoreId"] = PKCS11_KEY_STORE_ID
    if key.multi_region:
        metadata["MultiRegionConfiguration"] = {
            "MultiRegionKeyType": "PRIMARY",
            "PrimaryKey": {"Arn": key.arn, "Region": key.region},
            "ReplicaKeys": [],
        }
    return metadata
