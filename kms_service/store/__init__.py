"""Key metadata persistence (SQLite)."""

from kms_service.store.grants import GrantRecord
from kms_service.store.sqlite import (
    AliasRecord,
    KeyRecord,
    MaterialRecord,
    MetadataStore,
    StoreError,
)

__all__ = [
    "AliasRecord",
    "GrantRecord",
    "KeyRecord",
    "MaterialRecord",
    "MetadataStore",
    "StoreError",
]
