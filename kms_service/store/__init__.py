"""Key metadata persistence (SQLite)."""

from kms_service.store.sqlite import (
    AliasRecord,
    KeyRecord,
    MaterialRecord,
    MetadataStore,
    MultiRegionMember,
    StoreError,
)

__all__ = [
    "AliasRecord",
    "KeyRecord",
    "MaterialRecord",
    "MetadataStore",
    "MultiRegionMember",
    "StoreError",
]
