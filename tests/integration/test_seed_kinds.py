"""Seeding every key kind against real servers: local-kms seed files with RSA, ECC and HMAC
keys load as keys of those kinds with their material (checked with `cryptography` and Python's
hmac against the keys in the files), and ``mock-kms export --include-material`` then ``--seed``
carries every kind across data directories."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path
from typing import Any

import yaml
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from tests.support.admin import mock_kms
from tests.support.importing import import_material
from tests.support.kms_ops import KmsClient, account_client, new_account_id
from tests.support.server import running_server

FIXTURES = Path(__file__).parent.parent / "fixtures" / "localkms"
ACCOUNT = "111122223333"


def _fixture_entries(name: str) -> dict[str, dict[str, Any]]:
    """Every key entry of a local-kms fixture, by KeyId (read with PyYAML, not mock-kms)."""
    document = yaml.safe_load((FIXTURES / name).read_text())
    entries: dict[str, dict[str, Any]] = {}
    for group in document["Keys"].values():
        for kind in group.values():
            for entry in kind:
                entries[str(entry["Metadata"]["KeyId"])] = entry
    return entries


def _spki(public_key: PublicKeyTypes) -> bytes:
    return public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def _verify(public_key: PublicKeyTypes, signature: bytes, message: bytes, algorithm: str) -> None:
    """Raises InvalidSignature unless ``signature`` is ``algorithm``'s over ``message``."""
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        digest = {"ECDSA_SHA_256": hashes.SHA256(), "ECDSA_SHA_384": hashes.SHA384()}[algorithm]
        public_key.verify(signature, message, ec.ECDSA(digest))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, message)
    else:
        assert isinstance(public_key, rsa.RSAPublicKey)
        public_key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())


def _check_signing_key(
    kms: KmsClient, key_id: str, private: PrivateKeyTypes, algorithm: str
) -> None:
    public = private.public_key()
    assert kms.get_public_key(KeyId=key_id)["PublicKey"] == _spki(public)
    message = b"seeded signing key"
    signature = kms.sign(
        KeyId=key_id, Message=message, MessageType="RAW", SigningAlgorithm=algorithm
    )["Signature"]
    _verify(public, signature, message, algorithm)


def test_local_kms_readme_rsa_and_ecc_keys_load_with_their_private_keys(tmp_path: Path) -> None:
    entries = _fixture_entries("README-asymmetric.yaml")
    seed = FIXTURES / "README-asymmetric.yaml"
    with running_server(tmp_path / "data", extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        assert "skipped" not in server.log()
        for key_id, spec, algorithm in (
            ("ff275b92-0def-4dfc-b0f6-87c96b26c6c7", "RSA_2048", "RSASSA_PKCS1_V1_5_SHA_256"),
            ("800d5768-3fd7-4edd-a4b8-4c81c3e4c147", "ECC_NIST_P256", "ECDSA_SHA_256"),
        ):
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            assert (metadata["KeySpec"], metadata["KeyUsage"]) == (spec, "SIGN_VERIFY")
            assert metadata["KeyState"] == "Enabled"
            assert metadata["Description"] == entries[key_id]["Metadata"]["Description"]
            private = serialization.load_pem_private_key(
                entries[key_id]["PrivateKeyPem"].encode(), None
            )
            _check_signing_key(kms, key_id, private, algorithm)


def test_local_kms_every_kind_fixture_loads_each_kind(tmp_path: Path) -> None:
    entries = _fixture_entries("every-kind.yaml")
    seed = FIXTURES / "every-kind.yaml"
    with running_server(tmp_path / "data", extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        specs = {
            key["KeyId"]: kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
            for key in kms.list_keys()["Keys"]
        }
        assert {k: (m["KeySpec"], m["KeyUsage"], m["KeyState"]) for k, m in specs.items()} == {
            "0b5c1f4e-8a0e-4c61-9a3f-1d2e3f4a5b6c": (
                "SYMMETRIC_DEFAULT", "ENCRYPT_DECRYPT", "Enabled",
            ),
            "2c9d1a7e-4b3f-4e2a-8c1d-7e6f5a4b3c2d": ("HMAC_256", "GENERATE_VERIFY_MAC", "Enabled"),
            "3d8e2b6f-5c4a-4f3b-9d2e-8f7a6b5c4d3e": ("HMAC_512", "GENERATE_VERIFY_MAC", "Enabled"),
            "4e7f3c5a-6d5b-4a4c-8e3f-9a8b7c6d5e4f": (
                "HMAC_384", "GENERATE_VERIFY_MAC", "PendingImport",
            ),
            "5f6a4d3b-7e6c-4b5d-9f4a-0b9c8d7e6f5a": ("RSA_3072", "ENCRYPT_DECRYPT", "Enabled"),
            "6a5b5e4c-8f7d-4c6e-8a5b-1c0d9e8f7a6b": ("ECC_NIST_P384", "SIGN_VERIFY", "Enabled"),
            "7b4c6f5d-9a8e-4d7f-9b6c-2d1e0f9a8b7c": ("ECC_SECG_P256K1", "SIGN_VERIFY", "Enabled"),
        }  # fmt: skip
        external = specs["3d8e2b6f-5c4a-4f3b-9d2e-8f7a6b5c4d3e"]
        assert external["Origin"] == "EXTERNAL"
        assert external["ExpirationModel"] == "KEY_MATERIAL_DOES_NOT_EXPIRE"

        for key_id, algorithm, digest in (
            ("2c9d1a7e-4b3f-4e2a-8c1d-7e6f5a4b3c2d", "HMAC_SHA_256", hashlib.sha256),
            ("3d8e2b6f-5c4a-4f3b-9d2e-8f7a6b5c4d3e", "HMAC_SHA_512", hashlib.sha512),
        ):
            material = bytes.fromhex(entries[key_id]["BackingKeys"][0])
            mac = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm=algorithm)["Mac"]
            assert mac == hmac.new(material, b"m", digest).digest()
        assert kms.generate_mac(KeyId="alias/hmac", Message=b"m", MacAlgorithm="HMAC_SHA_256")[
            "KeyId"
        ].endswith("2c9d1a7e-4b3f-4e2a-8c1d-7e6f5a4b3c2d")

        rsa_entry = entries["5f6a4d3b-7e6c-4b5d-9f4a-0b9c8d7e6f5a"]
        rsa_private = serialization.load_pem_private_key(rsa_entry["PrivateKeyPem"].encode(), None)
        assert isinstance(rsa_private, rsa.RSAPrivateKey)
        offline = rsa_private.public_key().encrypt(
            b"encrypted offline",
            padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None),
        )
        decrypted = kms.decrypt(
            KeyId="alias/rsa", CiphertextBlob=offline, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )
        assert decrypted["Plaintext"] == b"encrypted offline"

        for key_id in (
            "6a5b5e4c-8f7d-4c6e-8a5b-1c0d9e8f7a6b",
            "7b4c6f5d-9a8e-4d7f-9b6c-2d1e0f9a8b7c",
        ):
            private = serialization.load_pem_private_key(
                entries[key_id]["PrivateKeyPem"].encode(), None
            )
            algorithm = kms.describe_key(KeyId=key_id)["KeyMetadata"]["SigningAlgorithms"][0]
            _check_signing_key(kms, key_id, private, algorithm)

        aes = "0b5c1f4e-8a0e-4c61-9a3f-1d2e3f4a5b6c"
        blob = kms.encrypt(KeyId=aes, Plaintext=b"aes")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"aes"


def _snapshot_crypto(kms: KmsClient, keys: dict[str, str], tmp_path: Path) -> dict[str, Any]:
    """What each kind of key can show of its material: ciphertexts, MACs, public keys."""
    taken: dict[str, Any] = {}
    for name, key_id in keys.items():
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        usage = metadata["KeyUsage"]
        if metadata["KeySpec"] == "SYMMETRIC_DEFAULT":
            taken[name] = kms.encrypt(KeyId=key_id, Plaintext=name.encode())["CiphertextBlob"]
        elif usage == "GENERATE_VERIFY_MAC":
            algorithm = metadata["MacAlgorithms"][0]
            taken[name] = kms.generate_mac(KeyId=key_id, Message=b"m", MacAlgorithm=algorithm)[
                "Mac"
            ]
        else:
            taken[name] = kms.get_public_key(KeyId=key_id)["PublicKey"]
    return taken


def test_export_then_seed_carries_every_kind(tmp_path: Path) -> None:
    account = new_account_id()
    kinds = {
        "aes": {},
        "rsa-sign": {"KeySpec": "RSA_2048", "KeyUsage": "SIGN_VERIFY"},
        "rsa-encrypt": {"KeySpec": "RSA_3072", "KeyUsage": "ENCRYPT_DECRYPT"},
        "p256-sign": {"KeySpec": "ECC_NIST_P256", "KeyUsage": "SIGN_VERIFY"},
        "p521-agree": {"KeySpec": "ECC_NIST_P521", "KeyUsage": "KEY_AGREEMENT"},
        "secp256k1": {"KeySpec": "ECC_SECG_P256K1", "KeyUsage": "SIGN_VERIFY"},
        "ed25519": {"KeySpec": "ECC_NIST_EDWARDS25519", "KeyUsage": "SIGN_VERIFY"},
        "hmac-224": {"KeySpec": "HMAC_224", "KeyUsage": "GENERATE_VERIFY_MAC"},
        "external-aes": {"Origin": "EXTERNAL"},
        "external-hmac": {
            "Origin": "EXTERNAL", "KeySpec": "HMAC_384", "KeyUsage": "GENERATE_VERIFY_MAC",
        },
        "external-pending": {"Origin": "EXTERNAL"},
    }  # fmt: skip
    with running_server(tmp_path / "source") as server:
        kms = account_client(server.endpoint, account)
        keys = {
            name: kms.create_key(Description=name, **args)["KeyMetadata"]["KeyId"]
            for name, args in kinds.items()
        }
        import_material(kms, keys["external-aes"], bytes(range(32)), tmp_path / "a")
        import_material(kms, keys["external-hmac"], bytes(range(48)), tmp_path / "h")
        kms.rotate_key_on_demand(KeyId=keys["aes"])
        before = {
            name: kms.describe_key(KeyId=key_id)["KeyMetadata"] for name, key_id in keys.items()
        }
        taken = _snapshot_crypto(
            kms, {n: k for n, k in keys.items() if n != "external-pending"}, tmp_path
        )

    exported = tmp_path / "export.yaml"
    result = mock_kms(
        "export", "--data-dir", str(tmp_path / "source"), "--include-material", "-o", str(exported)
    )
    assert result.returncode == 0, result.stderr
    text = exported.read_text()
    assert "BEGIN PRIVATE KEY" in text and "key_spec: ECC_NIST_EDWARDS25519" in text

    with running_server(tmp_path / "fresh", extra_args=["--seed", str(exported)]) as server:
        kms = account_client(server.endpoint, account)
        for name, key_id in keys.items():
            after = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            for field in ("KeySpec", "KeyUsage", "KeyState", "Origin", "Description"):
                assert after[field] == before[name][field], (name, field)
            for field in ("SigningAlgorithms", "MacAlgorithms", "KeyAgreementAlgorithms"):
                assert after.get(field) == before[name].get(field), (name, field)
        again = _snapshot_crypto(
            kms, {n: k for n, k in keys.items() if n != "external-pending"}, tmp_path
        )
        for name in taken:
            if kinds[name].get("KeySpec") is None:  # symmetric: old ciphertexts decrypt
                assert kms.decrypt(CiphertextBlob=taken[name])["Plaintext"] == name.encode()
            else:  # the same MAC, the same public key: the same material
                assert again[name] == taken[name], name
        # Re-importing the exported material is a re-import (same material), not new material.
        response = import_material(kms, keys["external-aes"], bytes(range(32)), tmp_path / "r")
        assert response["KeyMaterialId"] == before["external-aes"]["CurrentKeyMaterialId"]


def test_export_without_material_seeds_imported_keys_as_pending_import(tmp_path: Path) -> None:
    account = new_account_id()
    with running_server(tmp_path / "source") as server:
        kms = account_client(server.endpoint, account)
        key_id = kms.create_key(Origin="EXTERNAL")["KeyMetadata"]["KeyId"]
        material = bytes(range(32))
        import_material(kms, key_id, material, tmp_path / "a")
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    exported = tmp_path / "export.yaml"
    result = mock_kms("export", "--data-dir", str(tmp_path / "source"), "-o", str(exported))
    assert result.returncode == 0, result.stderr
    with running_server(tmp_path / "fresh", extra_args=["--seed", str(exported)]) as server:
        kms = account_client(server.endpoint, account)
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingImport"
        import_material(kms, key_id, material, tmp_path / "b")
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
