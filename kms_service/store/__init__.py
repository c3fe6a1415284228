"""Key metadata persistence (SQLite)."""

from kms_service.store.grants import GrantRecord
from kms_service.store.metadata import MetadataStore, StoreError
from kms_service.store.records import (
    AliasRecord,
    ImportedMaterialRecord,
    KeyRecord,
    KeyStoreRecord,
    MaterialRecord,
    MultiRegionMember,
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
