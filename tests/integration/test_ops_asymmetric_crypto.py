"""Encrypt, Decrypt and ReEncrypt with RSA keys (RSAES_OAEP_SHA_1/256): data encrypted
offline with GetPublicKey's key (by `cryptography` and by `openssl pkeyutl`) decrypts in KMS,
AWS's plaintext limits and messages, and every way a request can be wrong."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from tests.support.key_kinds import create_key_of, declared, public_key_of, public_pem
from tests.support.kms_ops import NO_MESSAGE, KmsClient, create_key, expect_error

INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."
LIMITS = {
    ("RSA_2048", "RSAES_OAEP_SHA_1"): 214,
    ("RSA_3072", "RSAES_OAEP_SHA_1"): 342,
    ("RSA_4096", "RSAES_OAEP_SHA_1"): 470,
    ("RSA_2048", "RSAES_OAEP_SHA_256"): 190,
    ("RSA_3072", "RSAES_OAEP_SHA_256"): 318,
    ("RSA_4096", "RSAES_OAEP_SHA_256"): 446,
}


def _oaep(algorithm: str) -> padding.OAEP:
    digest = hashes.SHA1() if algorithm.endswith("SHA_1") else hashes.SHA256()
    return padding.OAEP(mgf=padding.MGF1(digest), algorithm=digest, label=None)


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256"])
def test_offline_encryption_decrypts_in_kms(kms: KmsClient, algorithm: str) -> None:
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    public = public_key_of(kms, key["KeyId"])
    assert isinstance(public, rsa.RSAPublicKey)
    plaintext = os.urandom(100)
    ciphertext = public.encrypt(plaintext, _oaep(algorithm))
    decrypted = declared(
        lambda: kms.decrypt(
            KeyId=key["KeyId"], CiphertextBlob=ciphertext, EncryptionAlgorithm=algorithm
        )
    )
    assert decrypted["Plaintext"] == plaintext
    assert decrypted["KeyId"] == key["Arn"]
    assert decrypted["EncryptionAlgorithm"] == algorithm
    assert "KeyMaterialId" not in decrypted  # symmetric keys only


@pytest.mark.parametrize(
    ("algorithm", "options"),
    [
        ("RSAES_OAEP_SHA_256",
         ["-pkeyopt", "rsa_oaep_md:sha256", "-pkeyopt", "rsa_mgf1_md:sha256"]),
        ("RSAES_OAEP_SHA_1", []),
    ],
)  # fmt: skip
def test_openssl_pkeyutl_encryption_decrypts_in_kms(
    kms: KmsClient, tmp_path: Path, algorithm: str, options: list[str]
) -> None:
    key = create_key_of(kms, "RSA_3072", "ENCRYPT_DECRYPT")
    pem = public_pem(kms, key["KeyId"], tmp_path / "public.pem")
    plaintext = tmp_path / "plain.bin"
    plaintext.write_bytes(b"encrypted by openssl, decrypted by mock-kms")
    ciphertext = tmp_path / "cipher.bin"
    result = subprocess.run(
        ["openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(pem),
         "-pkeyopt", "rsa_padding_mode:oaep", *options,
         "-in", str(plaintext), "-out", str(ciphertext)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    decrypted = declared(
        lambda: kms.decrypt(
            KeyId=key["KeyId"],
            CiphertextBlob=ciphertext.read_bytes(),
            EncryptionAlgorithm=algorithm,
        )
    )
    assert decrypted["Plaintext"] == plaintext.read_bytes()


@pytest.mark.parametrize(("spec", "algorithm"), sorted(LIMITS))
def test_plaintext_limits(kms: KmsClient, spec: str, algorithm: str) -> None:
    key = create_key_of(kms, spec, "ENCRYPT_DECRYPT")
    limit = LIMITS[(spec, algorithm)]
    longest = os.urandom(limit)
    encrypted = declared(
        lambda: kms.encrypt(KeyId=key["KeyId"], Plaintext=longest, EncryptionAlgorithm=algorithm)
    )
    assert encrypted["KeyId"] == key["Arn"]
    assert encrypted["EncryptionAlgorithm"] == algorithm
    assert len(encrypted["CiphertextBlob"]) == int(spec.split("_")[1]) // 8  # raw RSA-OAEP
    decrypted = kms.decrypt(
        KeyId=key["KeyId"],
        CiphertextBlob=encrypted["CiphertextBlob"],
        EncryptionAlgorithm=algorithm,
    )
    assert decrypted["Plaintext"] == longest
    with expect_error(
        "ValidationException",
        f"Algorithm {algorithm} and key spec {spec} cannot encrypt data larger than {limit} bytes.",
    ):
        kms.encrypt(
            KeyId=key["KeyId"], Plaintext=os.urandom(limit + 1), EncryptionAlgorithm=algorithm
        )


def test_encrypt_needs_an_rsa_algorithm(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    with expect_error(
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
    ):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")
    with expect_error(
        "InvalidKeyUsageException",
        "Algorithm SYMMETRIC_DEFAULT is incompatible with key spec RSA_2048.",
    ):
        kms.decrypt(KeyId=key["KeyId"], CiphertextBlob=bytes(256))


def test_symmetric_key_refuses_rsa_algorithms(kms: KmsClient) -> None:
    key = create_key(kms)
    with expect_error(
        "InvalidKeyUsageException",
        "Algorithm RSAES_OAEP_SHA_1 is incompatible with key spec SYMMETRIC_DEFAULT.",
    ):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_1")


def test_signing_key_cannot_encrypt(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "SIGN_VERIFY")
    with expect_error(
        "InvalidKeyUsageException",
        f"{key['Arn']} key usage is SIGN_VERIFY which is not valid for Encrypt.",
    ):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256")


def test_no_encryption_context_with_asymmetric_keys(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    message = (
        "EncryptionContext is not supported for asymmetric KMS keys. "
        "Remove the EncryptionContext parameter."
    )
    with expect_error("ValidationException", message):
        kms.encrypt(
            KeyId=key["KeyId"], Plaintext=b"p", EncryptionAlgorithm="RSAES_OAEP_SHA_256",
            EncryptionContext={"purpose": "test"},
        )  # fmt: skip
    with expect_error("ValidationException", message):
        kms.decrypt(
            KeyId=key["KeyId"], CiphertextBlob=bytes(256), EncryptionAlgorithm="RSAES_OAEP_SHA_256",
            EncryptionContext={"purpose": "test"},
        )  # fmt: skip


def test_decrypt_failures_are_invalid_ciphertext(kms: KmsClient) -> None:
    key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    ciphertext = kms.encrypt(
        KeyId=key["KeyId"], Plaintext=b"secret", EncryptionAlgorithm="RSAES_OAEP_SHA_256"
    )["CiphertextBlob"]
    # Without KeyId the bytes are read as a symmetric blob: not one.
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=ciphertext, EncryptionAlgorithm="RSAES_OAEP_SHA_256")
    # The other OAEP digest, a tampered ciphertext, another key: all the same answer.
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(
            KeyId=key["KeyId"], CiphertextBlob=ciphertext, EncryptionAlgorithm="RSAES_OAEP_SHA_1"
        )
    tampered = ciphertext[:-1] + bytes([ciphertext[-1] ^ 1])
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(
            KeyId=key["KeyId"], CiphertextBlob=tampered, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )
    other = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(
            KeyId=other["KeyId"],
            CiphertextBlob=ciphertext,
            EncryptionAlgorithm="RSAES_OAEP_SHA_256",
        )


def test_symmetric_blob_with_an_rsa_key_id_is_the_wrong_key(kms: KmsClient) -> None:
    symmetric = create_key(kms)
    blob = kms.encrypt(KeyId=symmetric["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    rsa_key = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    with expect_error("IncorrectKeyException", INCORRECT_KEY):
        kms.decrypt(
            KeyId=rsa_key["KeyId"], CiphertextBlob=blob, EncryptionAlgorithm="RSAES_OAEP_SHA_256"
        )


def test_re_encrypt_between_symmetric_and_rsa_keys(kms: KmsClient) -> None:
    symmetric = create_key(kms)
    first = create_key_of(kms, "RSA_2048", "ENCRYPT_DECRYPT")
    second = create_key_of(kms, "RSA_4096", "ENCRYPT_DECRYPT")
    blob = kms.encrypt(
        KeyId=symmetric["KeyId"], Plaintext=b"travels", EncryptionContext={"a": "b"}
    )["CiphertextBlob"]
    to_rsa = declared(
        lambda: kms.re_encrypt(
            CiphertextBlob=blob, SourceEncryptionContext={"a": "b"},
            DestinationKeyId=first["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
        )
    )  # fmt: skip
    assert to_rsa["SourceKeyId"] == symmetric["Arn"]
    assert to_rsa["KeyId"] == first["Arn"]
    assert to_rsa["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert to_rsa["DestinationEncryptionAlgorithm"] == "RSAES_OAEP_SHA_256"
    assert to_rsa["SourceKeyMaterialId"] == symmetric["CurrentKeyMaterialId"]
    assert "DestinationKeyMaterialId" not in to_rsa
    rsa_to_rsa = kms.re_encrypt(
        CiphertextBlob=to_rsa["CiphertextBlob"], SourceKeyId=first["KeyId"],
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_256", DestinationKeyId=second["KeyId"],
        DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_1",
    )  # fmt: skip
    assert "SourceKeyMaterialId" not in rsa_to_rsa
    back = kms.re_encrypt(
        CiphertextBlob=rsa_to_rsa["CiphertextBlob"], SourceKeyId=second["KeyId"],
        SourceEncryptionAlgorithm="RSAES_OAEP_SHA_1", DestinationKeyId=symmetric["KeyId"],
    )  # fmt: skip
    assert back["DestinationKeyMaterialId"] == symmetric["CurrentKeyMaterialId"]
    assert kms.decrypt(CiphertextBlob=back["CiphertextBlob"])["Plaintext"] == b"travels"
    with expect_error("ValidationException"):
        kms.re_encrypt(
            CiphertextBlob=blob, SourceEncryptionContext={"a": "b"},
            DestinationKeyId=first["KeyId"], DestinationEncryptionAlgorithm="RSAES_OAEP_SHA_256",
            DestinationEncryptionContext={"c": "d"},
        )  # fmt: skip
