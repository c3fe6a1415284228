"""Seed files: both formats parse, and every error names the file, the line and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from kms_service.seeding import SeedError, load_seed_file, parse_seed
from kms_service.seeding.apply import seeded_material_id

FIXTURES = Path(__file__).parent.parent / "fixtures" / "localkms"
KEY = "6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f"
HEX = "5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9"


def error_of(text: str) -> SeedError:
    with pytest.raises(SeedError) as info:
        parse_seed(text, "seed.yaml")
    return info.value


def test_native_document_parses_every_field() -> None:
    document = parse_seed(
        f"""version: 1
keys:
  - id: {KEY}
    account: "123456789012"
    region: eu-west-1
    description: orders
    state: Disabled
    creation_date: 2024-01-01T00:00:00Z
    rotation: {{enabled: true, period_days: 180, next_rotation_date: "2025-01-01T00:00:00+00:00"}}
    material:
      - key: {HEX}
        created: 2023-01-01
      - key: {HEX.upper()[::-1]}
        rotation_type: ON_DEMAND
    aliases: [alias/orders]
    tags: {{team: payments}}
    policy: {{Version: "2012-10-17", Statement: []}}
aliases:
  - {{name: alias/x, target: "arn:aws:kms:eu-west-1:123456789012:key/{KEY}"}}
""",
        "seed.yaml",
    )
    assert document.format == "mock-kms"
    (key,) = document.keys
    assert (key.key_id, key.account_id, key.region) == (KEY, "123456789012", "eu-west-1")
    assert key.state == "Disabled" and key.description == "orders"
    assert key.creation_date == 1704067200.0
    assert key.rotation is not None and key.rotation.period_days == 180
    assert key.rotation.next_rotation_date == 1735689600.0
    assert key.materials[0].material == bytes.fromhex(HEX)
    assert [m.rotation_type for m in key.materials] == [None, "ON_DEMAND"]
    assert key.materials[0].created == 1672531200.0
    assert key.backend == "software"  # material implies the software backend
    assert key.tags == (("team", "payments"),)
    assert key.policy_is_document and '"2012-10-17"' in (key.policy or "")
    assert document.aliases[0].target_key_id == KEY


@pytest.mark.parametrize(
    ("text", "line", "field", "words"),
    [
        ("keys:\n  - id: NOT-A-UUID\n", 2, "keys[0].id", "not a KMS key id"),
        (f"keys:\n  - id: {KEY}\n    colour: red\n", 3, "keys[0].colour", "unknown field"),
        (
            f"keys:\n  - id: {KEY}\n    rotation:\n      enabled: true\n      period_days: 30\n",
            5,
            "keys[0].rotation.period_days",
            "between 90 and 2560",
        ),
        (
            f"keys:\n  - id: {KEY}\n    material:\n      - key: abcd\n",
            4,
            "keys[0].material[0].key",
            "256-bit key",
        ),
        (f"keys:\n  - id: {KEY}\n    state: Gone\n", 3, "keys[0].state", "must be one of"),
        (
            f"keys:\n  - id: {KEY}\n    backend: pkcs11\n    material:\n      - key: {HEX}\n",
            2,
            "keys[0].material",
            "software backend",
        ),
        (f"keys:\n  - id: {KEY}\n  - id: {KEY}\n", 3, "keys[1]", "declared twice"),
        ("keys:\n  - description: x\n", 2, "keys[0].id", "is required"),
        ("keys: [\n", 2, "", "not valid YAML"),
        (f"keys:\n  - id: {KEY}\n    id: {KEY}\n", 3, "keys[0].id", "appears twice"),
        (
            "Keys:\n  Symmetric:\n    Aes:\n      - Metadata:\n          KeyId: 1234\n"
            f"        BackingKeys: [{HEX}]\n",
            5,
            "Keys.Symmetric.Aes[0].Metadata.KeyId",
            "not a KMS key id",
        ),
    ],
)
def test_errors_name_the_line_and_the_field(text: str, line: int, field: str, words: str) -> None:
    error = error_of(text)
    assert error.line == line, str(error)
    assert error.field == (field or "(document)") or (not field and error.field == ""), str(error)
    assert words in str(error)
    assert str(error).startswith(f"seed.yaml:{line}: ")


def test_local_kms_simple_example_loads_aes_and_ecc_and_skips_the_address_id() -> None:
    document = load_seed_file(FIXTURES / "README-simple.yaml")
    assert document.format == "local-kms"
    assert [(k.key_id, k.key_spec, k.key_usage) for k in document.keys] == [
        ("bc436485-5092-42b8-92a3-0aa8b93536dc", "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT"),
        ("800d5768-3fd7-4edd-a4b8-4c81c3e4c147", "ECC_NIST_P256", "SIGN_VERIFY"),
    ]
    assert [a.name for a in document.aliases] == ["alias/testing"]
    # The 0x... id (an Ethereum address) is reported as written, not as YAML 1.1's integer.
    assert len(document.warnings) == 1
    assert "0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 skipped" in document.warnings[0]
    assert "README-simple.yaml:11: Keys.Asymmetric.Ecc[0]" in document.warnings[0]


def test_local_kms_backing_keys_become_material_versions() -> None:
    document = load_seed_file(FIXTURES / "README-rotated.yaml")
    first = document.keys[0]
    assert len(first.materials) == 2
    assert [m.rotation_type for m in first.materials] == [None, "AUTOMATIC"]
    assert first.materials[0].material == bytes.fromhex(
        "34743777217A25432A46294A404E635266556A586E3272357538782F413F4428"
    )
    assert {a.name for a in document.aliases} == {"alias/dev", "alias/test"}


def test_local_kms_optional_fields() -> None:
    document = load_seed_file(FIXTURES / "README-optional-fields.yaml")
    rotating, imported, pending = document.keys
    assert rotating.description == "Your key description"
    assert rotating.rotation is not None and rotating.rotation.enabled
    assert rotating.rotation.next_rotation_date == 1568301561.0
    assert imported.origin == "EXTERNAL" and len(imported.materials) == 1
    assert pending.origin == "EXTERNAL" and pending.materials == ()


def test_local_kms_legacy_flat_list() -> None:
    document = parse_seed(
        f"Keys:\n  - Metadata: {{KeyId: {KEY}}}\n    BackingKeys: [{HEX}]\n", "seed.yaml"
    )
    assert [key.key_id for key in document.keys] == [KEY]


def test_local_kms_aes_key_needs_backing_keys() -> None:
    error = error_of(f"Keys:\n  Symmetric:\n    Aes:\n      - Metadata: {{KeyId: {KEY}}}\n")
    assert error.line == 4 and error.field.endswith("BackingKeys")


def test_seeded_material_ids_are_stable_and_per_key() -> None:
    material = bytes.fromhex(HEX)
    assert seeded_material_id(material, KEY) == seeded_material_id(material, KEY)
    assert seeded_material_id(material, KEY) != seeded_material_id(
        material, "bc436485-5092-42b8-92a3-0aa8b93536dc"
    )
    assert len(seeded_material_id(material, KEY)) == 64
    assert HEX not in seeded_material_id(material, KEY)


def _pem(private_key: object) -> str:
    from cryptography.hazmat.primitives import serialization

    assert hasattr(private_key, "private_bytes")
    return str(
        private_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )


def _indented(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip().splitlines())


def test_native_kinds_parse_with_their_material() -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    private = ec.generate_private_key(ec.SECP384R1())
    hmac_hex = "ab" * 48
    document = parse_seed(
        f"""version: 1
keys:
  - id: {KEY}
    key_spec: ECC_NIST_P384
    material:
      - key: |
{_indented(_pem(private), 10)}
  - id: 7b4c6f5d-9a8e-4d7f-9b6c-2d1e0f9a8b7c
    key_spec: HMAC_384
    origin: EXTERNAL
    material: [{{key: {hmac_hex}}}]
""",
        "seed.yaml",
    )
    ecc, mac = document.keys
    assert (ecc.key_spec, ecc.key_usage) == ("ECC_NIST_P384", "SIGN_VERIFY")
    assert ecc.materials[0].material == private.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    assert (mac.key_spec, mac.key_usage, mac.origin) == (
        "HMAC_384",
        "GENERATE_VERIFY_MAC",
        "EXTERNAL",
    )
    assert mac.materials[0].material == bytes.fromhex(hmac_hex)


@pytest.mark.parametrize(
    ("fields", "line", "field", "words"),
    [
        ("    key_spec: RSA_2048\n", 3, "keys[0].key_spec", "needs its key usage"),
        (
            "    key_spec: HMAC_256\n    key_usage: SIGN_VERIFY\n",
            4,
            "keys[0].key_usage",
            "KeyUsage SIGN_VERIFY is not compatible with KeySpec HMAC_256",
        ),
        ("    key_spec: SM3\n", 3, "keys[0].key_spec", "unknown key spec"),
        (
            f"    key_spec: HMAC_256\n    material: [{{key: {HEX[:20]}}}]\n",
            4,
            "keys[0].material[0].key",
            "HMAC_256 key material must be 32 to 64 bytes",
        ),
        (
            f"    key_spec: HMAC_256\n    material: [{{key: {HEX}}}, {{key: {HEX}}}]\n",
            2,
            "keys[0].material",
            "only symmetric encryption keys rotate",
        ),
        (
            "    key_spec: ECC_NIST_P256\n    rotation: {enabled: true}\n",
            4,
            "keys[0].rotation",
            "only for symmetric encryption keys",
        ),
        (
            "    key_spec: ECC_NIST_P256\n    material: [{key: not a pem}]\n",
            4,
            "keys[0].material[0].key",
            "unencrypted PEM private key",
        ),
    ],
)
def test_native_kind_errors_name_the_line_and_the_field(
    fields: str, line: int, field: str, words: str
) -> None:
    error = error_of(f"keys:\n  - id: {KEY}\n{fields}")
    assert (error.line, error.field) == (line, field), str(error)
    assert words in str(error)


def test_native_private_key_of_another_spec_is_refused() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = _pem(ec.generate_private_key(ec.SECP256R1()))
    error = error_of(
        f"keys:\n  - id: {KEY}\n    key_spec: ECC_NIST_P384\n    material:\n      - key: |\n"
        f"{_indented(pem, 10)}\n"
    )
    assert "is a ECC_NIST_P256 key, not ECC_NIST_P384" in str(error)
    assert error.field == "keys[0].material[0].key"


def test_local_kms_every_kind_fixture() -> None:
    document = load_seed_file(FIXTURES / "every-kind.yaml")
    assert document.warnings == []
    kinds = {k.key_id: (k.key_spec, k.key_usage, k.origin, len(k.materials)) for k in document.keys}
    assert kinds["2c9d1a7e-4b3f-4e2a-8c1d-7e6f5a4b3c2d"] == (
        "HMAC_256",
        "GENERATE_VERIFY_MAC",
        "AWS_KMS",
        1,
    )
    assert kinds["4e7f3c5a-6d5b-4a4c-8e3f-9a8b7c6d5e4f"][2:] == ("EXTERNAL", 0)
    assert kinds["5f6a4d3b-7e6c-4b5d-9f4a-0b9c8d7e6f5a"][:2] == ("RSA_3072", "ENCRYPT_DECRYPT")
    assert kinds["7b4c6f5d-9a8e-4d7f-9b6c-2d1e0f9a8b7c"][0] == "ECC_SECG_P256K1"
    assert all(k.backend == "software" for k in document.keys)


@pytest.mark.parametrize(
    ("entry", "words"),
    [
        (
            "Asymmetric:\n    Rsa:\n      - Metadata: {KeyId: " + KEY + "}\n"
            "        PrivateKeyPem: x\n",
            "unencrypted PEM private key",
        ),
        (
            "Symmetric:\n    Hmac:\n      - Metadata: {KeyId: " + KEY + ", KeySpec: HMAC_999}\n"
            "        BackingKeys: [" + HEX + "]\n",
            "must be one of HMAC_224",
        ),
        (
            "Symmetric:\n    Hmac:\n      - Metadata: {KeyId: " + KEY + ", KeySpec: HMAC_256}\n",
            "list one backing key",
        ),
    ],
)
def test_local_kms_kind_errors(entry: str, words: str) -> None:
    assert words in str(error_of("Keys:\n  " + entry))


def test_local_kms_rsa_needs_key_usage_and_hmac_extras_are_warned() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = _pem(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    error = error_of(
        "Keys:\n  Asymmetric:\n    Rsa:\n      - Metadata: {KeyId: " + KEY + "}\n"
        "        PrivateKeyPem: |\n" + _indented(pem, 10) + "\n"
    )
    assert "needs its key usage" in str(error)
    document = parse_seed(
        "Keys:\n  Symmetric:\n    Hmac:\n      - Metadata: {KeyId: "
        + KEY
        + ", KeySpec: HMAC_256}\n"
        "        NextKeyRotation: 2030-01-01T00:00:00Z\n"
        f"        BackingKeys: [{HEX}, {HEX[::-1]}]\n",
        "seed.yaml",
    )
    assert len(document.keys[0].materials) == 1
    assert any("AWS does not rotate HMAC keys" in w for w in document.warnings)
    assert any("only the first backing key is used" in w for w in document.warnings)
