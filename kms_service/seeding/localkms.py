"""local-kms's ``seed.yaml`` (nsmithuk/local-kms), so its users can switch without rewriting::

    Keys:
      Symmetric:
        Aes:
          - Metadata: {KeyId: <uuid>, Description: "...", Origin: EXTERNAL}
            NextKeyRotation: "2019-09-12T15:19:21+00:00"   # optional; enables rotation
            BackingKeys: [<64 hex>, ...]                   # oldest first; >1: past rotations
      Asymmetric:
        Rsa: [...]
        Ecc: [...]
    Aliases:
      - {AliasName: alias/testing, TargetKeyId: <uuid>}

Also the older flat form (``Keys:`` a list of AES keys). mock-kms has only symmetric keys:
asymmetric and HMAC entries are skipped with a warning naming their line, as are aliases
of skipped keys. AES keys go to the software backend (their material comes from the file).
"""

from __future__ import annotations

from kms_service.seeding.document import Node
from kms_service.seeding.model import SeedAlias, SeedDocument, SeedKey, SeedMaterial, SeedRotation
from kms_service.seeding.native import key_id_of, material_bytes, position

FORMAT = "local-kms"
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
            aes_nodes = keys.items()
        else:
            aes_nodes = _typed_sections(document, keys, skipped)
        for node in aes_nodes:
            document.keys.append(_parse_aes(node))
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


def _typed_sections(document: SeedDocument, keys: Node, skipped: set[str]) -> list[Node]:
    """The AES entries of ``Keys: {Symmetric: {Aes: [...]}, Asymmetric: {...}}``; records the
    ids of everything else as skipped."""
    aes: list[Node] = []
    for group_name, group in keys.mapping().items():
        if group.value is None:
            continue
        for kind, entries in group.mapping().items():
            if entries.value is None:
                continue
            if group_name == "Symmetric" and kind == "Aes":
                aes.extend(entries.items())
                continue
            for entry in entries.items():
                key_id = _metadata_key_id(entry)
                skipped.add(key_id)
                document.warnings.append(
                    f"{entry.source}:{entry.line}: {entry.path}: {group_name} {kind} key "
                    f"{key_id} skipped: mock-kms has symmetric (AES) keys only"
                )
    return aes


def _metadata_key_id(entry: Node) -> str:
    metadata = entry.field("Metadata") if entry.is_mapping() else None
    key_id = metadata.field("KeyId") if metadata is not None and metadata.is_mapping() else None
    return key_id.string().strip() if key_id is not None else "(no KeyId)"


def _parse_aes(node: Node) -> SeedKey:
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
