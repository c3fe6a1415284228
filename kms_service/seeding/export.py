"""``mock-kms export``: the current state as a seed file (mock-kms's own format), so that
seeding a fresh data directory with it reproduces the keys, aliases, tags, policies, rotation
settings and history, and, with ``--include-material``, decrypts every old ciphertext.

Reads the data directory directly (SQLite allows it while the server runs). Key material is
written only with ``--include-material`` and only for keys on the software backend. Keys in a
PKCS#11 token are left out of ``keys:`` and listed in a comment instead: their material never
leaves the token, so a seed could only make new keys under the same ids, which would not
decrypt the old ciphertexts (and a server without ``--backend pkcs11`` would refuse to start
on them). The file therefore always seeds a fresh data directory. AWS managed keys and their
``alias/aws/*`` aliases are left out too: the service creates them on first use.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives import serialization

from backends.base import MaterialNotFoundError
from database import DatabaseError
from kms_service.domain.errors import ConfigurationError
from kms_service.domain.key_states import KeyState
from kms_service.seeding.kinds import is_secret_spec
from kms_service.settings import Settings
from kms_service.store import KeyRecord, MetadataStore, StoreError

HEADER = (
    "# mock-kms seed file, written by `mock-kms export`.\n"
    "# Apply with `mock-kms serve --seed FILE` (or MOCK_KMS_SEED=FILE).\n"
)
MATERIAL_WARNING = "# It contains KEY MATERIAL in the clear: keep it as secret as the keys.\n"
#: Backends whose keys a seed can recreate (their material can be exported and imported).
SEEDABLE_BACKENDS = ("software",)
LEFT_OUT_HEADER = (
    "#\n"
    "# Left out: {count} key(s) whose material lives in a PKCS#11 token and never leaves it.\n"
    "# A seed cannot recreate them: it would make new keys under the same ids that do not\n"
    "# decrypt the old ciphertexts. The token still holds them; for reference only:\n"
)


def iso(epoch: float) -> str:
    """``2024-05-01T12:00:00.123456Z``: exact to the microsecond."""
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def export_state(
    store: MetadataStore,
    material_source: Any | None,
    warnings: list[str],
    left_out: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The seed document for everything in ``store`` a seed can recreate. ``material_source``
    (the software backend, or None) supplies material when it is to be included. Keys on
    other backends (a PKCS#11 token) are appended to ``left_out`` (their entries, for a
    comment) and named in ``warnings``."""
    aliases_by_key: dict[tuple[str, str, str], list[str]] = {}
    for alias in store.all_aliases():
        aliases_by_key.setdefault((alias.account_id, alias.region, alias.target_key_id), []).append(
            alias.alias_name
        )
    keys = []
    for key in store.all_keys():
        if key.key_manager != "CUSTOMER":
            continue
        aliases = aliases_by_key.get((key.account_id, key.region, key.key_id), [])
        if key.backend not in SEEDABLE_BACKENDS:
            warnings.append(
                f"key {key.arn}: in the {key.backend} token, left out (listed in a comment)"
            )
            if left_out is not None:
                left_out.append(_export_key(store, key, aliases, None, warnings))
            continue
        keys.append(_export_key(store, key, aliases, material_source, warnings))
    return {"version": 1, "keys": keys}


def _export_key(
    store: MetadataStore,
    key: KeyRecord,
    aliases: list[str],
    material_source: Any | None,
    warnings: list[str],
) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "id": key.key_id,
        "account": key.account_id,
        "region": key.region,
        "description": key.description,
        "creation_date": iso(key.creation_date),
        "origin": key.origin,
        "key_spec": key.key_spec,
        "key_usage": key.key_usage,
        "backend": key.backend,
    }
    if key.state in (KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_DELETION):
        entry["state"] = key.state.value
    if key.state == KeyState.PENDING_DELETION and key.deletion_date is not None:
        entry["deletion_date"] = iso(key.deletion_date)
    rotation: dict[str, Any] = {"enabled": key.rotation_enabled}
    if key.rotation_enabled:
        rotation["period_days"] = key.rotation_period_days
        if key.next_rotation_date is not None:
            rotation["next_rotation_date"] = iso(key.next_rotation_date)
    entry["rotation"] = rotation
    if material_source is not None:
        if key.backend in SEEDABLE_BACKENDS:
            materials = _export_materials(store, key, material_source, warnings)
            if materials:
                entry["material"] = materials
        else:
            warnings.append(f"key {key.arn}: on the {key.backend} backend, material not exported")
    if key.origin == "EXTERNAL" and "material" not in entry and "state" in entry:
        # Without its material an EXTERNAL key can only be seeded as PendingImport; import
        # the material again after seeding.
        del entry["state"]
    if aliases:
        entry["aliases"] = aliases
    tags = store.tags(key)
    if tags:
        entry["tags"] = dict(tags)
    entry["policy"] = key.policy
    return entry


def dump_yaml(
    document: dict[str, Any],
    include_material: bool,
    left_out: list[dict[str, Any]] | None = None,
) -> str:
    """The seed file: header, then ``left_out`` entries as comments, then ``document``."""
    body = _yaml(document)
    header = HEADER + (MATERIAL_WARNING if include_material else "")
    if left_out:
        listing = _yaml(left_out)
        header += LEFT_OUT_HEADER.format(count=len(left_out)) + "".join(
            f"#   {line}\n" for line in listing.splitlines()
        )
    return header + body


def material_text(key_spec: str, material: bytes) -> str:
    """Material as seed files write it: hex for AES and HMAC keys, PKCS#8 PEM for private
    keys (the backends keep those as PKCS#8 DER)."""
    if is_secret_spec(key_spec):
        return material.hex()
    private_key = serialization.load_der_private_key(material, password=None)
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _export_materials(
    store: MetadataStore, key: KeyRecord, material_source: Any, warnings: list[str]
) -> list[dict[str, Any]]:
    """The key's material versions, oldest first. Imported material that was deleted or has
    expired is gone (it is left out, with a warning), and so is material imported for a
    rotation that has not happened yet (a seed cannot hold it)."""
    exported = []
    for material in store.materials(key):
        try:
            raw = material_source.export_material(material.material_id)
        except MaterialNotFoundError:
            warnings.append(
                f"key {key.arn}: key material {material.material_id} was deleted or expired, "
                "not exported"
            )
            continue
        exported.append(
            {
                "id": material.material_id,
                "key": material_text(key.key_spec, raw),
                "created": iso(material.created),
                **({"rotation_type": material.rotation_type} if material.rotation_type else {}),
            }
        )
    if key.origin == "EXTERNAL" and any(m.pending_rotation for m in store.imported_materials(key)):
        warnings.append(
            f"key {key.arn}: key material imported for a rotation still pending, not exported"
        )
    return exported


def _yaml(document: Any) -> str:
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        # Multi-line strings (policies) as readable literal blocks.
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(document, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def export_command(args: argparse.Namespace) -> int:
    """``mock-kms export``: print or write the state as a seed file."""
    settings = Settings.from_sources({"data_dir": args.data_dir})
    store = MetadataStore(settings.data_dir, settings.database_url)
    if not store.path.is_file():
        raise ConfigurationError(f"no mock-kms database in {settings.data_dir}")
    material_source = None
    if args.include_material:
        from backends.software import SoftwareBackend
        from local_secrets.root_key import RootKeyError, load_root_key

        try:
            root_key = load_root_key(settings.data_dir, settings.root_key, create=False)
        except RootKeyError as exc:
            raise ConfigurationError(str(exc)) from None
        material_source = SoftwareBackend(settings.data_dir, root_key)
    warnings: list[str] = []
    left_out: list[dict[str, Any]] = []
    try:
        document = export_state(store, material_source, warnings, left_out)
        text = dump_yaml(document, args.include_material, left_out)
    except (StoreError, DatabaseError) as exc:
        raise ConfigurationError(f"cannot read {store.description}: {exc}") from None
    finally:
        store.close()
        if material_source is not None:
            material_source.close()
    for warning in warnings:
        print(f"mock-kms export: warning: {warning}", file=sys.stderr)
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        # Material in the clear: never readable by others.
        fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
    return 0


def register(subparsers: Any) -> None:
    export = subparsers.add_parser(
        "export", help="write the current keys, aliases, tags and policies as a seed file"
    )
    export.add_argument("--data-dir", help="state directory (MOCK_KMS_DATA_DIR, ./.mock-kms)")
    export.add_argument("--output", "-o", help="file to write (default: standard output)")
    export.add_argument(
        "--include-material",
        action="store_true",
        help="also write the key material of software-backend keys, in the clear",
    )
    export.set_defaults(handler=export_command)
