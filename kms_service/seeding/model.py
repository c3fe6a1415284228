"""What a seed file declares, whichever format it was written in.

A field left as None was not declared: reconciliation never changes what the file does not
mention. ``line`` and ``path`` point back into the file for error messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kms_service.domain.key_states import KeyState
from kms_service.seeding.document import SeedError

#: States a seed may declare (PendingImport follows from Origin EXTERNAL without material).
SEEDABLE_STATES = (KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_DELETION)
MATERIAL_BYTES = 32


@dataclass(frozen=True)
class Position:
    source: str
    line: int
    path: str

    def error(self, message: str, field: str | None = None) -> SeedError:
        name = f"{self.path}.{field}" if field else self.path
        return SeedError(self.source, self.line, name, message)


@dataclass(frozen=True)
class SeedMaterial:
    """One key-material version, in the form the backends keep it (32 bytes for AES, the raw
    key for HMAC, a PKCS#8 DER private key for asymmetric keys), optionally with its id and
    rotation date."""

    material: bytes = field(repr=False)
    material_id: str | None
    created: float | None
    rotation_type: str | None
    position: Position


@dataclass(frozen=True)
class SeedRotation:
    enabled: bool
    period_days: int | None
    next_rotation_date: float | None
    position: Position


@dataclass(frozen=True)
class SeedKey:
    key_id: str
    position: Position
    account_id: str | None = None
    region: str | None = None
    description: str | None = None
    state: KeyState | None = None
    deletion_date: float | None = None
    creation_date: float | None = None
    origin: str = "AWS_KMS"
    key_spec: str = "SYMMETRIC_DEFAULT"
    key_usage: str = "ENCRYPT_DECRYPT"
    backend: str | None = None
    rotation: SeedRotation | None = None
    materials: tuple[SeedMaterial, ...] = ()
    aliases: tuple[tuple[str, Position], ...] = ()
    tags: tuple[tuple[str, str], ...] | None = None
    policy: str | None = None
    #: The policy was written as a mapping: compare it as JSON, not as text.
    policy_is_document: bool = False


@dataclass(frozen=True)
class SeedAlias:
    name: str
    target_key_id: str
    position: Position
    account_id: str | None = None
    region: str | None = None


@dataclass
class SeedDocument:
    """A parsed seed file. ``warnings`` lists what was skipped or ignored, with its line."""

    source: str
    format: str
    keys: list[SeedKey] = field(default_factory=list)
    aliases: list[SeedAlias] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
