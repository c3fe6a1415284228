"""Key metadata persistence (SQLite)."""

from kms_service.store.sqlite import (
    AliasRecord,
    KeyRecord,
    KeyStoreRecord,
    MaterialRecord,
    MetadataStore,
    StoreError,
)

__all__ = [
    "AliasRecord",
    "KeyRecord",
    "KeyStoreRecord",
    "MaterialRecord",
    "MetadataStore",
    "StoreError",
]
