"""Key metadata persistence (SQLite)."""

from kms_service.store.grants import GrantRecord
from kms_service.store.records import (
    AliasRecord,
    ImportedMaterialRecord,
    KeyRecord,
    KeyStoreRecord,
    MaterialRecord,
    MultiRegionMember,
    WrappingKeyRecord,
)
from kms_service.store.sqlite import MetadataStore, StoreError

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
