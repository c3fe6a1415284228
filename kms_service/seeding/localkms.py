"""local-kms's ``seed.yaml`` (nsmithuk/local-kms), so its users can switch without rewriting::

    Keys:
      Symmetric:
        Aes:
          - Metadata: {KeyId: <uuid>, Description: "...", Origin: EXTERNAL}
            NextKeyRotation: "2019-09-12T15:19:21+00:00"   # optional; enables rotation
            BackingKeys: [<64 hex>, ...]                   # oldest first; >1: past rotations
        Hmac:
          - Metadata: {KeyId: <uuid>, KeySpec: HMAC_256, Origin: EXTERNAL}
            BackingKeys: [<hex of the spec's length>]
      Asymmetric:
        Rsa:
          - Metadata: {KeyId: <uuid>, KeyUsage: SIGN_VERIFY}   # or ENCRYPT_DECRYPT
            PrivateKeyPem: "-----BEGIN PRIVATE KEY-----..."   # PKCS#8; size gives the spec
        Ecc:
          - Metadata: {KeyId: <uuid>, KeyUsage: SIGN_VERIFY}
            PrivateKeyPem: "-----BEGIN EC PRIVATE KEY-----..."  # the curve gives the spec
            # or PrivateKeyHex: <64 hex>, a secp256k1 private key
    Aliases:
      - {AliasName: alias/testing, TargetKeyId: <uuid>}

Also the older flat form (``Keys:`` a list of AES keys). Every kind loads as a key of that
kind with its material, on the software backend (the material comes from the file). Entries
mock-kms cannot load (a KeyId that is not a KMS key id, such as local-kms's ``0x...``
Ethereum-address ids, or an unknown section) are skipped with a warning naming their line, as
are aliases of skipped keys. What local-kms accepts but AWS has no equivalent for (rotation or
several backing keys of an HMAC key) is ignored with a warning.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from backends.key_specs import EC_CURVES, ED25519_SPEC, HMAC_SPECS, RSA_SPECS
from kms_service.seeding.document import Node
from kms_service.seeding.kinds import (
    check_usage,
    private_key_from_pem,
    secp256k1_from_hex,
    secret_bytes,
)
from kms_service.seeding.model import SeedAlias, SeedDocument, SeedKey, SeedMaterial, SeedRotation
from kms_service.seeding.native import key_id_of, material_bytes, position

FORMAT = "local-kms"
#: local-kms's README names a secp256k1 key by its Ethereum address (``0x`` + 40 hex), which
#: cannot be a KMS key id: such entries are skipped. Other malformed ids are errors.
ETHEREUM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
DEFAULT_PERIOD_DAYS = 365


def looks_like_local_kms(root: Node) -> bool:
    """local-kms files use capitalised top-level fields."""
    return root.is_mapping() and any(name in root.mapping() for name in ("Keys", "Aliases"))


def parse_local_kms(root: Node) -> SeedDocument:
    """Read a local-kms seed file. Raises :class:`SeedError`; collects skips as warnings."""
    document = SeedDocument(source=root.source, format=FORMAT)
    skipped: set[str] = set()
    keys = root.field("Keys")
    if keys is not None:
        if isinstance(keys.value, list):  # the legacy flat form: AES keys only
            document.keys.extend(_parse_aes(document, node) for node in keys.items())
        else:
            document.keys.extend(_typed_sections(document, keys, skipped))
    for name, child in root.mapping().items():
        if name not in ("Keys", "Aliases"):
            document.warnings.append(f"{root.source}:{child.line}: {name}: ignored (unknown)")
    aliases = root.field("Aliases")
    for node in aliases.items() if aliases is not None else []:
        target = node.require("TargetKeyId")
        name = node.require("AliasName").string()
        if target.string().strip() in skipped:
            document.warnings.append(
                f"{root.source}:{node.line}: {node.path}: alias {name} skipped: its key was skipped"
            )
            continue
        document.aliases.append(
            SeedAlias(name=name, target_key_id=key_id_of(target), position=position(node))
        )
    return document


def _typed_sections(document: SeedDocument, keys: Node, skipped: set[str]) -> list[SeedKey]:
    """The keys of ``Keys: {Symmetric: {Aes, Hmac}, Asymmetric: {Rsa, Ecc}}``; records the ids
    of entries that cannot be loaded as skipped, with a warning each."""
    parsed: list[SeedKey] = []
    for group_name, group in keys.mapping().items():
        if group.value is None:
            continue
        for kind, entries in group.mapping().items():
            if entries.value is None:
                continue
            parser = _PARSERS.get((group_name, kind))
            for entry in entries.items():
                key_id = _metadata_key_id(entry)
                reason = None
                if parser is None:
                    reason = "mock-kms does not know this local-kms key section"
                elif ETHEREUM_ADDRESS.match(key_id):
                    reason = "its KeyId is an address, not a KMS key id (a lowercase UUID)"
                if reason is not None:
                    skipped.add(key_id)
                    document.warnings.append(
                        f"{entry.source}:{entry.line}: {entry.path}: {group_name} {kind} key "
                        f"{key_id} skipped: {reason}"
                    )
                    continue
                assert parser is not None
                parsed.append(parser(document, entry))
    return parsed


def _metadata_key_id(entry: Node) -> str:
    metadata = entry.field("Metadata") if entry.is_mapping() else None
    key_id = metadata.field("KeyId") if metadata is not None and metadata.is_mapping() else None
    return key_id.string().strip() if key_id is not None else "(no KeyId)"


def _parse_aes(document: SeedDocument, node: Node) -> SeedKey:
    metadata = node.require("Metadata")
    key_id = key_id_of(metadata.require("KeyId"))
    description = metadata.field("Description")
    origin_node = metadata.field("Origin")
    origin = "AWS_KMS"
    if origin_node is not None:
        origin = origin_node.string()
        if origin not in ("AWS_KMS", "EXTERNAL"):
            raise origin_node.error(f"must be AWS_KMS or EXTERNAL, got {origin!r}")
    backing = node.field("BackingKeys")
    backing_nodes = backing.items() if backing is not None else []
    if origin == "EXTERNAL" and len(backing_nodes) > 1:
        raise node.error(
            "an EXTERNAL key has at most one backing key", node.child_path("BackingKeys")
        )
    if origin != "EXTERNAL" and not backing_nodes:
        raise node.error("list one or more backing keys", node.child_path("BackingKeys"))
    materials = tuple(
        SeedMaterial(
            material=material_bytes(item),
            material_id=None,
            created=None,
            rotation_type=None if index == 0 else "AUTOMATIC",
            position=position(item),
        )
        for index, item in enumerate(backing_nodes)
    )
    next_rotation = node.field("NextKeyRotation")
    rotation = None
    if next_rotation is not None:
        rotation = SeedRotation(
            enabled=True,
            period_days=DEFAULT_PERIOD_DAYS,
            next_rotation_date=next_rotation.timestamp(),
            position=position(next_rotation),
        )
    return SeedKey(
        key_id=key_id,
        position=position(node),
        description=description.string() if description is not None else None,
        origin=origin,
        backend="software",
        rotation=rotation,
        materials=materials,
    )


def _origin(metadata: Node) -> str:
    origin_node = metadata.field("Origin")
    if origin_node is None:
        return "AWS_KMS"
    origin = origin_node.string()
    if origin not in ("AWS_KMS", "EXTERNAL"):
        raise origin_node.error(f"must be AWS_KMS or EXTERNAL, got {origin!r}")
    return origin


def _description(metadata: Node) -> str | None:
    description = metadata.field("Description")
    return description.string() if description is not None else None


def _usage(metadata: Node, key_spec: str, default: str | None) -> str:
    usage_node = metadata.field("KeyUsage")
    usage = usage_node.string() if usage_node is not None else default
    return check_usage(usage_node or metadata, key_spec, usage)


def _parse_hmac(document: SeedDocument, node: Node) -> SeedKey:
    """``Symmetric: Hmac:``: KeySpec in Metadata, the key in BackingKeys (hex)."""
    metadata = node.require("Metadata")
    spec_node = metadata.require("KeySpec")
    key_spec = spec_node.string()
    if key_spec not in HMAC_SPECS:
        raise spec_node.error(f"must be one of {', '.join(HMAC_SPECS)}, got {key_spec!r}")
    origin = _origin(metadata)
    backing = node.field("BackingKeys")
    backing_nodes = backing.items() if backing is not None else []
    if origin == "EXTERNAL" and len(backing_nodes) > 1:
        raise node.error(
            "an EXTERNAL key has at most one backing key", node.child_path("BackingKeys")
        )
    if origin != "EXTERNAL" and not backing_nodes:
        raise node.error("list one backing key", node.child_path("BackingKeys"))
    if len(backing_nodes) > 1:
        document.warnings.append(
            f"{node.source}:{backing_nodes[1].line}: {node.child_path('BackingKeys')}: only the "
            "first backing key is used: an HMAC key has one key material on AWS"
        )
    rotation = node.field("NextKeyRotation")
    if rotation is not None:
        document.warnings.append(
            f"{node.source}:{rotation.line}: {node.child_path('NextKeyRotation')}: ignored: "
            "AWS does not rotate HMAC keys"
        )
    materials = tuple(
        SeedMaterial(
            material=secret_bytes(item, key_spec),
            material_id=None,
            created=None,
            rotation_type=None,
            position=position(item),
        )
        for item in backing_nodes[:1]
    )
    return SeedKey(
        key_id=key_id_of(metadata.require("KeyId")),
        position=position(node),
        description=_description(metadata),
        origin=origin,
        key_spec=key_spec,
        key_usage=_usage(metadata, key_spec, None),
        backend="software",
        materials=materials,
    )


def _parse_private_key(node: Node, kinds: str, allowed: Callable[[str], bool]) -> tuple[str, bytes]:
    """``(key spec, PKCS#8 DER)`` from PrivateKeyPem (or, for secp256k1, PrivateKeyHex)."""
    pem = node.field("PrivateKeyPem")
    if pem is not None:
        key_spec, der = private_key_from_pem(pem)
        if not allowed(key_spec):
            raise pem.error(f"must be {kinds} private key, got a {key_spec} key")
        return key_spec, der
    hex_node = node.field("PrivateKeyHex")
    if hex_node is not None and allowed("ECC_SECG_P256K1"):
        return "ECC_SECG_P256K1", secp256k1_from_hex(hex_node)
    raise node.error("is required", node.child_path("PrivateKeyPem"))


def _asymmetric_key(node: Node, key_spec: str, der: bytes, usage_default: str | None) -> SeedKey:
    metadata = node.require("Metadata")
    pem = node.field("PrivateKeyPem") or node.field("PrivateKeyHex") or node
    return SeedKey(
        key_id=key_id_of(metadata.require("KeyId")),
        position=position(node),
        description=_description(metadata),
        origin=_origin(metadata),
        key_spec=key_spec,
        key_usage=_usage(metadata, key_spec, usage_default),
        backend="software",
        materials=(
            SeedMaterial(
                material=der,
                material_id=None,
                created=None,
                rotation_type=None,
                position=position(pem),
            ),
        ),
    )


def _parse_rsa(document: SeedDocument, node: Node) -> SeedKey:
    """``Asymmetric: Rsa:``: KeyUsage is required, as in local-kms; the size gives the spec."""
    key_spec, der = _parse_private_key(node, "an RSA 2048/3072/4096", RSA_SPECS.__contains__)
    return _asymmetric_key(node, key_spec, der, None)


def _parse_ecc(document: SeedDocument, node: Node) -> SeedKey:
    """``Asymmetric: Ecc:``: the curve gives the spec; KeyUsage defaults to SIGN_VERIFY."""
    key_spec, der = _parse_private_key(
        node, "an elliptic-curve", lambda spec: spec in EC_CURVES or spec == ED25519_SPEC
    )
    return _asymmetric_key(node, key_spec, der, "SIGN_VERIFY")


_PARSERS: dict[tuple[str, str], Callable[[SeedDocument, Node], SeedKey]] = {
    ("Symmetric", "Aes"): _parse_aes,
    ("Symmetric", "Hmac"): _parse_hmac,
    ("Asymmetric", "Rsa"): _parse_rsa,
    ("Asymmetric", "Ecc"): _parse_ecc,
}
