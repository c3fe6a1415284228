"""mock-kms's own seed format (``version: 1``), which ``mock-kms export`` also writes::

version: 1
keys:
  - id: 6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f   # fixed key id (UUID, or mrk- + 32 hex)
    account: "111122223333"        # default: MOCK_KMS_ACCOUNT_ID
    region: us-east-1              # default: MOCK_KMS_REGION
    description: orders service
    state: Enabled                 # Enabled | Disabled | PendingDeletion
    deletion_date: 2030-01-01T00:00:00Z       # PendingDeletion only (default: 30 days)
    creation_date: 2024-01-01T00:00:00Z
    origin: AWS_KMS                # or EXTERNAL (no material: PendingImport)
    key_spec: SYMMETRIC_DEFAULT    # any AWS KeySpec: RSA_2048, ECC_NIST_P256, HMAC_256, ...
    key_usage: ENCRYPT_DECRYPT     # default: the spec's first usage (RSA keys must say)
    backend: software              # software | pkcs11 (default: the server's --backend)
    rotation: {enabled: true, period_days: 365, next_rotation_date: 2025-01-01T00:00:00Z}
    material:                      # software backend only; oldest first, last is current
      - key: 5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9
        created: 2023-01-01T00:00:00Z
      - key: 614e645267556b58703273357638792f423f4528472b4b6250655368566d5971
        created: 2024-01-01T00:00:00Z           # its rotation date
        rotation_type: AUTOMATIC                # or ON_DEMAND
    # Other kinds have one material: HMAC keys in hex, private keys as PEM (PKCS#8, or
    # SEC1 / PKCS#1), e.g.  material: [{key: "-----BEGIN PRIVATE KEY-----\n..."}]
    aliases: [alias/orders]
    tags: {team: payments}
    policy: {Version: "2012-10-17", Statement: [...]}   # or the policy text
aliases:
  - {name: alias/orders-current, target: 6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f}
"""

from __future__ import annotations

import base64
import binascii
import json
import re

from kms_service.domain.key_states import KeyState
from kms_service.seeding.document import Node
from kms_service.seeding.kinds import (
    SYMMETRIC_DEFAULT,
    check_usage,
    is_secret_spec,
    private_key_from_pem,
    secret_bytes,
)
from kms_service.seeding.model import (
    MATERIAL_BYTES,
    SEEDABLE_STATES,
    Position,
    SeedAlias,
    SeedDocument,
    SeedKey,
    SeedMaterial,
    SeedRotation,
)

FORMAT = "mock-kms"
KEY_ID = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
MATERIAL_ID = re.compile(r"^[0-9a-f]{64}$")
_ACCOUNT = re.compile(r"^\d{12}$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
_KEY_FIELDS = (
    "id", "account", "region", "description", "state", "deletion_date", "creation_date",
    "origin", "backend", "rotation", "material", "aliases", "tags", "policy", "key_spec",
    "key_usage",
)  # fmt: skip
MIN_PERIOD_DAYS, MAX_PERIOD_DAYS = 90, 2560


def position(node: Node) -> Position:
    return Position(node.source, node.line, node.path)


def key_id_of(node: Node) -> str:
    """A key id as AWS writes them, or a key ARN (its id is taken)."""
    text = node.string().strip()
    if text.startswith("arn:") and ":key/" in text:
        text = text.rsplit(":key/", 1)[1]
    if not KEY_ID.match(text):
        raise node.error(
            f"{text!r} is not a KMS key id: a lowercase UUID, or mrk- and 32 hex digits"
        )
    return text


def material_bytes(node: Node) -> bytes:
    """32 bytes from 64 hex digits (either case) or base64."""
    text = node.string().strip()
    if len(text) == 2 * MATERIAL_BYTES:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        decoded = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        decoded = b""
    if len(decoded) == MATERIAL_BYTES:
        return decoded
    raise node.error("must be a 256-bit key: 64 hex digits or 44 base64 characters")


def parse_native(root: Node) -> SeedDocument:
    """Read a ``version: 1`` document. Raises :class:`SeedError`."""
    root.only(("version", "keys", "aliases"))
    version = root.field("version")
    if version is not None and version.value != 1:
        raise version.error("only version 1 is understood by this mock-kms")
    document = SeedDocument(source=root.source, format=FORMAT)
    seen: dict[tuple[str | None, str | None, str], Node] = {}
    keys = root.field("keys")
    for node in keys.items() if keys is not None else []:
        key = _parse_key(node)
        scope = (key.account_id, key.region, key.key_id)
        if scope in seen:
            raise node.error(
                f"key {key.key_id} is declared twice (also on line {seen[scope].line})"
            )
        seen[scope] = node
        document.keys.append(key)
    aliases = root.field("aliases")
    for node in aliases.items() if aliases is not None else []:
        node.only(("name", "target", "account", "region"))
        target = node.require("target")
        document.aliases.append(
            SeedAlias(
                name=node.require("name").string(),
                target_key_id=key_id_of(target),
                position=position(node),
                account_id=_account(node),
                region=_region(node),
            )
        )
    return document


def _account(node: Node) -> str | None:
    field = node.field("account")
    if field is None:
        return None
    text = field.string()
    if not _ACCOUNT.match(text):
        raise field.error(f"must be a 12-digit account id (quote it), got {text!r}")
    return text


def _region(node: Node) -> str | None:
    field = node.field("region")
    if field is None:
        return None
    text = field.string()
    if not _REGION.match(text):
        raise field.error(f"must be a region such as us-east-1, got {text!r}")
    return text


def _parse_key(node: Node) -> SeedKey:
    node.only(_KEY_FIELDS)
    key_id = key_id_of(node.require("id"))
    state_node = node.field("state")
    state = None
    if state_node is not None:
        text = state_node.string()
        if text not in SEEDABLE_STATES:
            raise state_node.error(f"must be one of {', '.join(SEEDABLE_STATES)}, got {text!r}")
        state = KeyState(text)
    deletion = node.field("deletion_date")
    if deletion is not None and state != KeyState.PENDING_DELETION:
        raise deletion.error("only with state: PendingDeletion")
    origin_node = node.field("origin")
    origin = "AWS_KMS"
    if origin_node is not None:
        origin = origin_node.string()
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise origin_node.error(f"must be AWS_KMS or EXTERNAL, got {origin!r}")
    backend_node = node.field("backend")
    backend = None
    if backend_node is not None:
        backend = backend_node.string()
        if backend not in ("software", "pkcs11"):
            raise backend_node.error(f"must be software or pkcs11, got {backend!r}")
    key_spec = _optional_string(node, "key_spec") or SYMMETRIC_DEFAULT
    key_usage = check_usage(
        node.field("key_usage") or node.field("key_spec") or node,
        key_spec,
        _optional_string(node, "key_usage"),
    )
    materials = _parse_materials(node, key_spec)
    if len(materials) > 1 and key_spec != SYMMETRIC_DEFAULT:
        raise node.error(
            f"a {key_spec} key has one material: only symmetric encryption keys rotate",
            node.child_path("material"),
        )
    rotation = _parse_rotation(node)
    if rotation is not None and rotation.enabled and key_spec != SYMMETRIC_DEFAULT:
        raise rotation.position.error(
            f"automatic rotation is only for symmetric encryption keys, not {key_spec}"
        )
    if materials and backend == "pkcs11":
        raise node.error(
            "key material can only be seeded on the software backend: a PKCS#11 key is "
            "generated inside the token and never leaves it",
            node.child_path("material"),
        )
    if materials and origin == "EXTERNAL" and len(materials) > 1:
        raise node.error("an EXTERNAL key has at most one material", node.child_path("material"))
    policy, is_document = _parse_policy(node)
    return SeedKey(
        key_id=key_id,
        position=position(node),
        account_id=_account(node),
        region=_region(node),
        description=_optional_string(node, "description"),
        state=state,
        deletion_date=deletion.timestamp() if deletion is not None else None,
        creation_date=_optional_time(node, "creation_date"),
        origin=origin,
        key_spec=key_spec,
        key_usage=key_usage,
        backend=backend or ("software" if materials else None),
        rotation=rotation,
        materials=materials,
        aliases=_parse_key_aliases(node),
        tags=_parse_tags(node),
        policy=policy,
        policy_is_document=is_document,
    )


def _optional_string(node: Node, name: str) -> str | None:
    field = node.field(name)
    return None if field is None else field.string()


def _optional_time(node: Node, name: str) -> float | None:
    field = node.field(name)
    return None if field is None else field.timestamp()


def _parse_rotation(node: Node) -> SeedRotation | None:
    rotation = node.field("rotation")
    if rotation is None:
        return None
    rotation.only(("enabled", "period_days", "next_rotation_date"))
    enabled = rotation.require("enabled").boolean()
    period_node = rotation.field("period_days")
    period = None
    if period_node is not None:
        period = period_node.integer()
        if not MIN_PERIOD_DAYS <= period <= MAX_PERIOD_DAYS:
            raise period_node.error(
                f"must be between {MIN_PERIOD_DAYS} and {MAX_PERIOD_DAYS} days, got {period}"
            )
    next_node = rotation.field("next_rotation_date")
    if not enabled and (period is not None or next_node is not None):
        raise rotation.error("period_days and next_rotation_date need enabled: true")
    return SeedRotation(
        enabled=enabled,
        period_days=period,
        next_rotation_date=next_node.timestamp() if next_node is not None else None,
        position=position(rotation),
    )


def _parse_materials(node: Node, key_spec: str) -> tuple[SeedMaterial, ...]:
    field = node.field("material")
    if field is None:
        return ()
    materials = []
    for index, item in enumerate(field.items()):
        item.only(("key", "id", "created", "rotation_type"))
        id_node = item.field("id")
        material_id = None
        if id_node is not None:
            material_id = id_node.string().lower()
            if not MATERIAL_ID.match(material_id):
                raise id_node.error("must be a KeyMaterialId: 64 hex digits")
        type_node = item.field("rotation_type")
        rotation_type = None
        if type_node is not None:
            rotation_type = type_node.string()
            if index == 0:
                raise type_node.error("the first (original) material was not rotated in")
            if rotation_type not in ("AUTOMATIC", "ON_DEMAND"):
                raise type_node.error(f"must be AUTOMATIC or ON_DEMAND, got {rotation_type!r}")
        created = item.field("created")
        materials.append(
            SeedMaterial(
                material=_material(item.require("key"), key_spec),
                material_id=material_id,
                created=created.timestamp() if created is not None else None,
                rotation_type=rotation_type or (None if index == 0 else "AUTOMATIC"),
                position=position(item),
            )
        )
    if not materials:
        raise field.error("list at least one material, or leave the field out")
    return tuple(materials)


def _material(node: Node, key_spec: str) -> bytes:
    """One material of a ``key_spec`` key: hex or base64 for AES and HMAC keys, a PEM private
    key of that spec for the others."""
    if is_secret_spec(key_spec):
        return secret_bytes(node, key_spec)
    spec, der = private_key_from_pem(node)
    if spec != key_spec:
        raise node.error(f"the private key is a {spec} key, not {key_spec}")
    return der


def _parse_key_aliases(node: Node) -> tuple[tuple[str, Position], ...]:
    field = node.field("aliases")
    if field is None:
        return ()
    return tuple((item.string(), position(item)) for item in field.items())


def _parse_tags(node: Node) -> tuple[tuple[str, str], ...] | None:
    field = node.field("tags")
    if field is None:
        return None
    tags = []
    for name, value in field.mapping().items():
        if value.value is None or isinstance(value.value, list | dict):
            raise value.error("a tag value must be a string")
        tags.append((name, value.string()))
    return tuple(tags)


def _parse_policy(node: Node) -> tuple[str | None, bool]:
    field = node.field("policy")
    if field is None:
        return None, False
    if field.is_mapping():
        return json.dumps(_plain(field), indent=2), True
    return field.string(), False


def _plain(node: Node) -> object:
    """A node as plain JSON-able Python values (for policies written as YAML)."""
    if isinstance(node.value, dict):
        return {name: _plain(child) for name, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(child) for child in node.value]
    if isinstance(node.value, bool | int | float) or node.value is None:
        return node.value
    return node.string()
