"""The AWS CLI with asymmetric and HMAC keys: sign with the CLI and verify the signature with
the openssl command line and the PEM of get-public-key; RSA encryption offline, decryption by
the CLI; HMAC; a data key pair."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.integration.test_aws_cli import AwsCli
from tests.support.key_kinds import UNDECLARED_ON_PKCS11, software_material
from tests.support.server import RunningServer


@pytest.fixture()
def cli(kms_server: RunningServer, tmp_path: Path) -> AwsCli:
    return AwsCli(kms_server.endpoint, tmp_path)


def _create(cli: AwsCli, spec: str, usage: str) -> dict[str, str]:
    result = cli.run("create-key", "--key-spec", spec, "--key-usage", usage)
    if result.returncode != 0 and UNDECLARED_ON_PKCS11 in result.stderr:
        pytest.skip(f"the PKCS#11 backend declares {spec} unsupported")
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout)["KeyMetadata"])


def _public_pem(cli: AwsCli, key_id: str, path: Path) -> Path:
    der = base64.b64decode(
        cli.ok("get-public-key", "--key-id", key_id, "--output", "text", "--query", "PublicKey")
    )
    public = serialization.load_der_public_key(der)
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


@pytest.mark.parametrize(
    ("spec", "algorithm", "digest"),
    [
        ("ECC_NIST_P256", "ECDSA_SHA_256", "-sha256"),
        ("RSA_2048", "RSASSA_PKCS1_V1_5_SHA_512", "-sha512"),
    ],
)
def test_cli_signature_verified_by_openssl(
    cli: AwsCli, tmp_path: Path, spec: str, algorithm: str, digest: str
) -> None:
    key = _create(cli, spec, "SIGN_VERIFY")
    assert key["KeySpec"] == spec and key["KeyUsage"] == "SIGN_VERIFY"
    message = tmp_path / "release.tar"
    message.write_bytes(b"a release to sign" * 50)
    signature_b64 = cli.ok(
        "sign", "--key-id", key["KeyId"], "--message", f"fileb://{message}",
        "--message-type", "RAW", "--signing-algorithm", algorithm,
        "--output", "text", "--query", "Signature",
    )  # fmt: skip
    signature = tmp_path / "release.sig"
    signature.write_bytes(base64.b64decode(signature_b64))
    pem = _public_pem(cli, key["KeyId"], tmp_path / "public.pem")
    checked = subprocess.run(
        ["openssl", "dgst", digest, "-verify", str(pem),
         "-signature", str(signature), str(message)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0 and "Verified OK" in checked.stdout, checked.stderr
    verified = cli.ok(
        "verify", "--key-id", key["KeyId"], "--message", f"fileb://{message}",
        "--signature", f"fileb://{signature}", "--signing-algorithm", algorithm,
    )  # fmt: skip
    assert verified["SignatureValid"] is True
    message.write_bytes(b"tampered")
    refused = cli.run(
        "verify", "--key-id", key["KeyId"], "--message", f"fileb://{message}",
        "--signature", f"fileb://{signature}", "--signing-algorithm", algorithm,
    )  # fmt: skip
    assert refused.returncode != 0 and "KMSInvalidSignatureException" in refused.stderr


def test_cli_decrypts_offline_rsa_encryption(cli: AwsCli, tmp_path: Path) -> None:
    key = _create(cli, "RSA_2048", "ENCRYPT_DECRYPT")
    pem = _public_pem(cli, key["KeyId"], tmp_path / "public.pem")
    public = serialization.load_pem_public_key(pem.read_bytes())
    assert isinstance(public, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA256()), algorithm=hashes.SHA256(), label=None)
    ciphertext = tmp_path / "secret.enc"
    ciphertext.write_bytes(public.encrypt(b"for KMS only", oaep))
    plaintext_b64 = cli.ok(
        "decrypt", "--key-id", key["KeyId"], "--ciphertext-blob", f"fileb://{ciphertext}",
        "--encryption-algorithm", "RSAES_OAEP_SHA_256", "--output", "text", "--query", "Plaintext",
    )  # fmt: skip
    assert base64.b64decode(plaintext_b64) == b"for KMS only"


def test_cli_mac(cli: AwsCli, kms_server: RunningServer, tmp_path: Path) -> None:
    key = _create(cli, "HMAC_384", "GENERATE_VERIFY_MAC")
    message = tmp_path / "message"
    message.write_bytes(b"authenticate me")
    mac_b64 = cli.ok(
        "generate-mac", "--key-id", key["KeyId"], "--message", f"fileb://{message}",
        "--mac-algorithm", "HMAC_SHA_384", "--output", "text", "--query", "Mac",
    )  # fmt: skip
    mac_file = tmp_path / "mac"
    mac_file.write_bytes(base64.b64decode(mac_b64))
    verified = cli.ok(
        "verify-mac", "--key-id", key["KeyId"], "--message", f"fileb://{message}",
        "--mac-algorithm", "HMAC_SHA_384", "--mac", f"fileb://{mac_file}",
    )  # fmt: skip
    assert verified["MacValid"] is True
    if kms_server.env.get("MOCK_KMS_BACKEND") != "pkcs11":
        material = software_material(
            kms_server.data_dir, key["KeyId"], database_url=kms_server.database_url
        )
        expected = hmac.new(material, b"authenticate me", hashlib.sha384).digest()
        assert base64.b64decode(mac_b64) == expected


def test_cli_data_key_pair(cli: AwsCli, tmp_path: Path) -> None:
    key_id = cli.ok("create-key")["KeyMetadata"]["KeyId"]
    pair = cli.ok("generate-data-key-pair", "--key-id", key_id, "--key-pair-spec", "ECC_NIST_P256")
    blob = tmp_path / "private.enc"
    blob.write_bytes(base64.b64decode(pair["PrivateKeyCiphertextBlob"]))
    opened = cli.ok("decrypt", "--ciphertext-blob", f"fileb://{blob}")
    assert base64.b64decode(opened["Plaintext"]) == base64.b64decode(pair["PrivateKeyPlaintext"])
    private = serialization.load_der_private_key(
        base64.b64decode(pair["PrivateKeyPlaintext"]), None
    )
    assert private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    ) == base64.b64decode(pair["PublicKey"])
