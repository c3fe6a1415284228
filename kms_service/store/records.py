"""The rows the metadata store reads and writes, as frozen dataclasses.

Shared by :class:`kms_service.store.metadata.MetadataStore` and its table mixins; grant rows
are :class:`kms_service.store.grants.GrantRecord`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kms_service.domain.key_states import KeyState


@dataclass(frozen=True)
class KeyRecord:
    """One row of ``keys`` plus the id of its current key material."""

    account_id: str
    region: str
    key_id: str
    description: str
    key_usage: str
    key_spec: str
    origin: str
    key_manager: str
    state: KeyState
    creation_date: float
    deletion_date: float | None
    multi_region: bool
    backend: str
    rotation_enabled: bool
    rotation_period_days: int | None
    next_rotation_date: float | None
    on_demand_rotations: int
    policy: str
    #: EXTERNAL keys: the current material's ExpirationModel, and the earliest ValidTo of the
    #: key's imported material (when it goes back to PendingImport).
    expiration_model: str | None = None
    valid_to: float | None = None
    current_material_id: str | None = None

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.key_id}"


@dataclass(frozen=True)
class MaterialRecord:
    """One key-material version of a key; ``seq`` 0 is the original material."""

    seq: int
    material_id: str
    created: float
    rotation_type: str | None


@dataclass(frozen=True)
class WrappingKeyRecord:
    """A wrapping key pair handed out by GetParametersForImport (the pair is in ``backend``)."""

    wrapping_key_id: str
    account_id: str
    region: str
    key_id: str
    backend: str
    wrapping_algorithm: str
    wrapping_key_spec: str
    created: float
    valid_to: float


@dataclass(frozen=True)
class ImportedMaterialRecord:
    """Import details of one key-material version of an EXTERNAL key."""

    material_id: str
    account_id: str
    region: str
    key_id: str
    #: ``IMPORTED`` or ``PENDING_IMPORT`` (deleted or expired; re-import the same material).
    import_state: str
    #: Imported as NEW_KEY_MATERIAL and not yet made current by RotateKeyOnDemand.
    pending_rotation: bool
    expiration_model: str
    valid_to: float | None
    description: str
    check_value: bytes = field(repr=False)
    imported: float


@dataclass(frozen=True)
class MultiRegionMember:
    """One key of a multi-Region key: its region, ``PRIMARY`` or ``REPLICA``, and (for a
    primary in PendingReplicaDeletion) the deletion window that starts with its last replica's
    deletion."""

    region: str
    role: str
    pending_window_days: int | None = None


@dataclass(frozen=True)
class AliasRecord:
    account_id: str
    region: str
    alias_name: str
    target_key_id: str
    creation_date: float
    last_updated_date: float

    @property
    def arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:{self.alias_name}"


# --- custom key stores (schema version 6; docs/custom-key-stores.md) -----------------------
@dataclass(frozen=True)
class KeyStoreRecord:
    """One row of ``custom_key_stores``. The password is only ever held wrapped."""

    store_id: str
    account_id: str
    region: str
    name: str
    store_type: str
    cluster_id: str
    trust_anchor: str
    password_nonce: bytes | None
    password_wrapped: bytes | None
    connection_state: str
    connection_error: str | None
    connection_epoch: int
    creation_date: float
