"""GenerateMac/VerifyMac (equal to Python's hmac), DeriveSharedSecret (equal to ECDH computed
offline) and GenerateDataKeyPair(WithoutPlaintext) (private key matches the public key and
opens with Decrypt), with AWS's errors for bad input."""

from __future__ import annotations

import hashlib
import hmac

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from tests.support.key_kinds import (
    AGREEMENT_SPECS,
    HMAC_SPECS,
    create_key_of,
    declared,
    load_private,
    public_key_of,
    software_material,
)
from tests.support.kms_ops import NO_MESSAGE, KmsClient, create_key, expect_error
from tests.support.server import RunningServer

MAC_LENGTHS = {"HMAC_224": 28, "HMAC_256": 32, "HMAC_384": 48, "HMAC_512": 64}


def _algorithm(spec: str) -> str:
    return "HMAC_SHA_" + spec.split("_")[1]


# --- HMAC ----------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", HMAC_SPECS)
def test_mac_round_trip(kms: KmsClient, spec: str) -> None:
    key = create_key_of(kms, spec, "GENERATE_VERIFY_MAC")
    algorithm = _algorithm(spec)
    generated = declared(
        lambda: kms.generate_mac(KeyId=key["KeyId"], Message=b"message", MacAlgorithm=algorithm)
    )
    assert generated["KeyId"] == key["Arn"]
    assert generated["MacAlgorithm"] == algorithm
    assert len(generated["Mac"]) == MAC_LENGTHS[spec]
    again = kms.generate_mac(KeyId=key["KeyId"], Message=b"message", MacAlgorithm=algorithm)
    assert again["Mac"] == generated["Mac"]  # deterministic, on either worker
    verified = kms.verify_mac(
        KeyId=key["KeyId"], Message=b"message", MacAlgorithm=algorithm, Mac=generated["Mac"]
    )
    assert verified == {
        **verified,
        "KeyId": key["Arn"],
        "MacValid": True,
        "MacAlgorithm": algorithm,
    }
    with expect_error("KMSInvalidMacException", NO_MESSAGE):
        kms.verify_mac(
            KeyId=key["KeyId"], Message=b"messagf", MacAlgorithm=algorithm, Mac=generated["Mac"]
        )
    with expect_error("KMSInvalidMacException", NO_MESSAGE):
        kms.verify_mac(
            KeyId=key["KeyId"],
            Message=b"message",
            MacAlgorithm=algorithm,
            Mac=generated["Mac"][:-1],
        )


@pytest.mark.parametrize("spec", HMAC_SPECS)
def test_mac_equals_pythons_hmac(kms_server: RunningServer, kms: KmsClient, spec: str) -> None:
    """On the software backend the key can be read out of the keystore (as `mock-kms export
    --include-material` does) and the MAC recomputed by Python's hmac module."""
    key = create_key_of(kms, spec, "GENERATE_VERIFY_MAC")
    if kms_server.env.get("MOCK_KMS_BACKEND") == "pkcs11":
        pytest.skip("PKCS#11 HMAC keys never leave the token; the round trip test covers them")
    material = software_material(
        kms_server.data_dir, key["KeyId"], database_url=kms_server.database_url
    )
    assert len(material) == MAC_LENGTHS[spec]
    message = b"compare me with Python's hmac"
    mac = kms.generate_mac(KeyId=key["KeyId"], Message=message, MacAlgorithm=_algorithm(spec))[
        "Mac"
    ]
    digest = getattr(hashlib, "sha" + spec.split("_")[1])
    assert mac == hmac.new(material, message, digest).digest()


def test_mac_algorithm_must_match_the_spec(kms: KmsClient) -> None:
    key = create_key_of(kms, "HMAC_224", "GENERATE_VERIFY_MAC")
    with expect_error(
        "InvalidKeyUsageException", "Algorithm HMAC_SHA_256 is incompatible with key spec HMAC_224."
    ):
        kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    with expect_error(
        "InvalidKeyUsageException", "Algorithm HMAC_SHA_512 is incompatible with key spec HMAC_224."
    ):
        kms.verify_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_512", Mac=b"x" * 28)


def test_mac_needs_a_mac_key_and_a_known_algorithm(kms: KmsClient) -> None:
    key = create_key(kms)
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is ENCRYPT_DECRYPT which is not valid for GenerateMac.",
    ):
        kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_SHA_256")
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value 'HMAC_MD5' at 'macAlgorithm' failed to satisfy "
        "constraint: Member must satisfy enum value set: "
        "[HMAC_SHA_224, HMAC_SHA_256, HMAC_SHA_384, HMAC_SHA_512]",
    ):
        kms.generate_mac(KeyId=key["KeyId"], Message=b"m", MacAlgorithm="HMAC_MD5")


# --- ECDH ----------------------------------------------------------------------------------
CURVES = {
    "ECC_NIST_P256": ec.SECP256R1,
    "ECC_NIST_P384": ec.SECP384R1,
    "ECC_NIST_P521": ec.SECP521R1,
}


def _spki(private: ec.EllipticCurvePrivateKey) -> bytes:
    return private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


@pytest.mark.parametrize("spec", AGREEMENT_SPECS)
def test_shared_secret_equals_offline_ecdh(kms: KmsClient, spec: str) -> None:
    key = create_key_of(kms, spec, "KEY_AGREEMENT")
    peer = ec.generate_private_key(CURVES[spec]())
    derived = declared(
        lambda: kms.derive_shared_secret(
            KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=_spki(peer)
        )
    )
    ours = public_key_of(kms, key["KeyId"])
    assert isinstance(ours, ec.EllipticCurvePublicKey)
    assert derived["SharedSecret"] == peer.exchange(ec.ECDH(), ours)
    assert derived["KeyId"] == key["Arn"]
    assert derived["KeyAgreementAlgorithm"] == "ECDH"
    assert derived["KeyOrigin"] == "AWS_KMS"


def test_peer_key_of_another_curve_is_refused(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "KEY_AGREEMENT")
    message = (
        "PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo of a point on the curve "
        "of key spec ECC_NIST_P256."
    )
    for peer in (_spki(ec.generate_private_key(ec.SECP384R1())), b"\x30\x03\x02\x01\x00"):
        with expect_error("ValidationException", message):
            declared(
                lambda peer=peer: kms.derive_shared_secret(
                    KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH", PublicKey=peer
                )
            )


def test_signing_key_cannot_agree(kms: KmsClient) -> None:
    key = create_key_of(kms, "ECC_NIST_P256", "SIGN_VERIFY")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is SIGN_VERIFY which is not valid for DeriveSharedSecret.",
    ):
        kms.derive_shared_secret(
            KeyId=key["KeyId"], KeyAgreementAlgorithm="ECDH",
            PublicKey=_spki(ec.generate_private_key(ec.SECP256R1())),
        )  # fmt: skip


# --- data key pairs ------------------------------------------------------------------------
PAIR_SPECS = [
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
    "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519",
]  # fmt: skip


def _check_pair(private_der: bytes, public_der: bytes, spec: str) -> None:
    private = load_private(private_der)
    public = serialization.load_der_public_key(public_der)
    assert (
        private.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        == public_der
    )
    if spec.startswith("RSA"):
        assert isinstance(private, rsa.RSAPrivateKey) and isinstance(public, rsa.RSAPublicKey)
        assert private.key_size == int(spec.split("_")[1])
        signature = private.sign(b"m", padding.PKCS1v15(), hashes.SHA256())
        public.verify(signature, b"m", padding.PKCS1v15(), hashes.SHA256())
    elif spec == "ECC_NIST_EDWARDS25519":
        assert isinstance(private, ed25519.Ed25519PrivateKey)
        assert isinstance(public, ed25519.Ed25519PublicKey)
        public.verify(private.sign(b"m"), b"m")
    else:
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        public.verify(
            private.sign(b"m", ec.ECDSA(hashes.SHA256())), b"m", ec.ECDSA(hashes.SHA256())
        )


@pytest.mark.parametrize("spec", PAIR_SPECS)
def test_data_key_pair(kms: KmsClient, spec: str) -> None:
    key = create_key(kms)
    context = {"purpose": "pair"}
    pair = kms.generate_data_key_pair(
        KeyId=key["KeyId"], KeyPairSpec=spec, EncryptionContext=context
    )
    assert set(pair) - {"ResponseMetadata"} == {
        "PrivateKeyCiphertextBlob", "PrivateKeyPlaintext", "PublicKey", "KeyId", "KeyPairSpec",
        "KeyMaterialId",
    }  # fmt: skip
    assert pair["KeyId"] == key["Arn"]
    assert pair["KeyPairSpec"] == spec
    assert pair["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert pair["PrivateKeyPlaintext"] not in pair["PrivateKeyCiphertextBlob"]
    _check_pair(pair["PrivateKeyPlaintext"], pair["PublicKey"], spec)
    opened = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"], EncryptionContext=context)
    assert opened["Plaintext"] == pair["PrivateKeyPlaintext"]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])


@pytest.mark.parametrize("spec", ["ECC_NIST_P256", "RSA_2048"])
def test_data_key_pair_without_plaintext(kms: KmsClient, spec: str) -> None:
    key = create_key(kms)
    pair = kms.generate_data_key_pair_without_plaintext(KeyId=key["KeyId"], KeyPairSpec=spec)
    assert "PrivateKeyPlaintext" not in pair
    assert pair["KeyPairSpec"] == spec
    private_der = kms.decrypt(CiphertextBlob=pair["PrivateKeyCiphertextBlob"])["Plaintext"]
    _check_pair(private_der, pair["PublicKey"], spec)


def test_data_key_pair_sm2_is_not_offered(kms: KmsClient) -> None:
    key = create_key(kms)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value 'SM2' at 'keyPairSpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: [RSA_2048, RSA_3072, RSA_4096, "
        "ECC_NIST_P256, ECC_NIST_P384, ECC_NIST_P521, ECC_SECG_P256K1, ECC_NIST_EDWARDS25519]",
    ):
        kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec="SM2")


def test_recipient_is_refused(kms: KmsClient) -> None:
    """Nitro Enclaves attestation is not something a local KMS can check."""
    recipient = {"KeyEncryptionAlgorithm": "RSAES_OAEP_SHA_256", "AttestationDocument": b"doc"}
    message = "Recipient (Nitro Enclaves attestation) is not supported by mock-kms."
    key = create_key(kms)
    with expect_error("UnsupportedOperationException", message):
        kms.generate_data_key_pair(
            KeyId=key["KeyId"], KeyPairSpec="ECC_NIST_P256", Recipient=recipient
        )
    agreement = create_key_of(kms, "ECC_NIST_P256", "KEY_AGREEMENT")
    with expect_error("UnsupportedOperationException", message):
        kms.derive_shared_secret(
            KeyId=agreement["KeyId"], KeyAgreementAlgorithm="ECDH",
            PublicKey=_spki(ec.generate_private_key(ec.SECP256R1())), Recipient=recipient,
        )  # fmt: skip


def test_data_key_pair_ml_kem_is_not_supported(kms: KmsClient) -> None:
    key = create_key(kms)
    with expect_error(
        "UnsupportedOperationException", "KeyPairSpec ML_KEM_768 is not supported by mock-kms."
    ):
        kms.generate_data_key_pair(KeyId=key["KeyId"], KeyPairSpec="ML_KEM_768")
