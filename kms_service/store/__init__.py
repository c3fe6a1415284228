"""Key metadata persistence (SQLite)."""

from kms_service.store.grants import GrantRecord
from kms_service.store.sqlite import (
    AliasRecord,
    ImportedMaterialRecord,
    KeyRecord,
    KeyStoreRecord,
    MaterialRecord,
    MetadataStore,
    MultiRegionMember,
    StoreError,
    WrappingKeyRecord,
)

__all__ = [
    "AliasRecord",
    "GrantRecord",
    "ImportedMaterialRecord",
    "KeyRecord",
    "KeyStoreRecord",
    "MaterialRecord",
    "MetadataStore",
    "MultiRegionMember",
    "StoreError",
    "WrappingKeyRecord",
]
