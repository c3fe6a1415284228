"""Rendering keys as AWS ``KeyMetadata``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kms_service.domain.key_states import KeyState
from kms_service.operations.key_kinds import (
    COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS,
    algorithm_fields,
)
from kms_service.store import KeyRecord, MetadataStore, MultiRegionMember

#: Keys on the PKCS#11 backend live in the default custom key store (docs/custom-key-stores.md).
PKCS11_KEY_STORE_ID = "cks-mock-kms-pkcs11"


def key_metadata(
    key: KeyRecord, store: MetadataStore | None = None, cluster_id: str | None = None
) -> dict[str, Any]:
    """Every field AWS returns for a key of its kind, and none that it leaves out: one
    algorithm list chosen by key usage, and CurrentKeyMaterialId only for symmetric
    encryption keys (see docs/key-types.md). With ``store``, a multi-Region key's
    configuration names its primary and replicas as they are now (docs/multi-region-keys.md);
    without, it is shown as a primary without replicas. A key in a custom key store shows its
    ``CustomKeyStoreId`` and, when given, ``cluster_id`` as ``CloudHsmClusterId``."""
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
    elif key.backend.startswith("cks-"):
        metadata["CustomKeyStoreId"] = key.backend
    if cluster_id is not None and "CustomKeyStoreId" in metadata:
        metadata["CloudHsmClusterId"] = cluster_id
    if key.multi_region:
        members = [] if store is None else store.multi_region_members(key.account_id, key.key_id)
        metadata["MultiRegionConfiguration"] = multi_region_configuration(key, members)
        own = [m for m in members if m.region == key.region and m.role == "PRIMARY"]
        window = own[0].pending_window_days if own else None
        if key.state == KeyState.PENDING_REPLICA_DELETION and window is not None:
            metadata["PendingDeletionWindowInDays"] = window
    return metadata


def multi_region_configuration(
    key: KeyRecord, members: Sequence[MultiRegionMember]
) -> dict[str, Any]:
    """AWS's ``MultiRegionConfiguration`` of ``key``, one of the keys ``members`` lists
    (none: a primary without replicas)."""

    def entry(region: str) -> dict[str, str]:
        return {"Arn": f"arn:aws:kms:{region}:{key.account_id}:key/{key.key_id}", "Region": region}

    primary = next((m.region for m in members if m.role == "PRIMARY"), key.region)
    return {
        "MultiRegionKeyType": "PRIMARY" if primary == key.region else "REPLICA",
        "PrimaryKey": entry(primary),
        "ReplicaKeys": [entry(m.region) for m in members if m.role == "REPLICA"],
    }
