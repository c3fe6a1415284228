"""Raw keyrings (AES, RSA) and the KMS keyring's checks that run before any KMS call."""

from __future__ import annotations

import os
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.asymmetric import padding as asymmetric_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.keywrap import aes_key_wrap

from clients.s3_encryption.errors import (
    EncryptionContextMismatchError,
    InvalidEncryptionContextError,
    KeyringError,
    TamperedMetadataError,
    WrongKeyError,
)
from clients.s3_encryption.formats import ContentAlgorithm, FormatVersion, WrapAlgorithm
from clients.s3_encryption.keyrings import (
    AesGcmKeyring,
    DataKey,
    KmsKeyring,
    RsaOaepKeyring,
    aws_error_code,
    validate_encryption_context,
)
from clients.s3_encryption.metadata import Envelope

SUITES = [ContentAlgorithm.AES_GCM, ContentAlgorithm.AES_GCM_COMMITTING]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def envelope_for(data_key: DataKey, algorithm: ContentAlgorithm) -> Envelope:
    version = (
        FormatVersion.V3 if algorithm is ContentAlgorithm.AES_GCM_COMMITTING else FormatVersion.V2
    )
    return Envelope(
        version=version,
        content_algorithm=algorithm,
        wrap_algorithm=data_key.wrap_algorithm,
        encrypted_data_key=data_key.encrypted,
        materials_description=data_key.materials_description,
    )


def legacy_envelope(wrap: WrapAlgorithm, encrypted: bytes) -> Envelope:
    return Envelope(
        version=FormatVersion.V1,
        content_algorithm=ContentAlgorithm.AES_CBC,
        wrap_algorithm=wrap,
        encrypted_data_key=encrypted,
        iv=bytes(16),
    )


@pytest.mark.parametrize("algorithm", SUITES)
def test_aes_keyring_round_trip(algorithm: ContentAlgorithm) -> None:
    keyring = AesGcmKeyring(os.urandom(32), {"label": "k1"})
    data_key = keyring.wrap_data_key(algorithm, {})
    assert data_key.wrap_algorithm is WrapAlgorithm.AES_GCM
    assert len(data_key.encrypted) == 60 and len(data_key.plaintext) == 32
    assert data_key.plaintext not in data_key.encrypted
    assert data_key.materials_description == {"label": "k1"}
    assert keyring.unwrap_data_key(envelope_for(data_key, algorithm), {}) == data_key.plaintext


@pytest.mark.parametrize("algorithm", SUITES)
def test_aes_keyring_wrong_key(algorithm: ContentAlgorithm) -> None:
    data_key = AesGcmKeyring(os.urandom(32)).wrap_data_key(algorithm, {})
    with pytest.raises(WrongKeyError):
        AesGcmKeyring(os.urandom(32)).unwrap_data_key(envelope_for(data_key, algorithm), {})


def test_aes_keyring_rejects_encryption_context_both_ways() -> None:
    keyring = AesGcmKeyring(os.urandom(32))
    with pytest.raises(InvalidEncryptionContextError, match="only KMS keyrings"):
        keyring.wrap_data_key(ContentAlgorithm.AES_GCM, {"a": "b"})
    data_key = keyring.wrap_data_key(ContentAlgorithm.AES_GCM, {})
    with pytest.raises(InvalidEncryptionContextError):
        keyring.unwrap_data_key(envelope_for(data_key, ContentAlgorithm.AES_GCM), {"a": "b"})


def test_aes_keyring_needs_a_256_bit_key() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        AesGcmKeyring(os.urandom(16))


def test_aes_keyring_repr_hides_the_key() -> None:
    key = os.urandom(32)
    assert key.hex() not in repr(AesGcmKeyring(key)) and str(key) not in repr(AesGcmKeyring(key))


def test_aes_keyring_reads_legacy_aeswrap_and_ecb() -> None:
    master, data_key = os.urandom(32), os.urandom(32)
    keyring = AesGcmKeyring(master)
    wrapped = aes_key_wrap(master, data_key)
    assert keyring.unwrap_data_key(legacy_envelope(WrapAlgorithm.AES_WRAP, wrapped), {}) == data_key
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(master), modes.ECB()).encryptor()
    ecb = encryptor.update(padder.update(data_key) + padder.finalize()) + encryptor.finalize()
    assert len(ecb) == 48
    assert keyring.unwrap_data_key(legacy_envelope(WrapAlgorithm.AES, ecb), {}) == data_key
    with pytest.raises(WrongKeyError):
        AesGcmKeyring(os.urandom(32)).unwrap_data_key(
            legacy_envelope(WrapAlgorithm.AES_WRAP, wrapped), {}
        )


def test_aes_keyring_refuses_other_wrap_families() -> None:
    with pytest.raises(WrongKeyError, match="not with an AES key"):
        AesGcmKeyring(os.urandom(32)).unwrap_data_key(
            legacy_envelope(WrapAlgorithm.RSA_OAEP_SHA1, bytes(256)), {}
        )


@pytest.mark.parametrize("algorithm", SUITES)
def test_rsa_keyring_round_trip_and_pseudo_data_key(
    rsa_key: rsa.RSAPrivateKey, algorithm: ContentAlgorithm
) -> None:
    data_key = RsaOaepKeyring(public_key=rsa_key.public_key()).wrap_data_key(algorithm, {})
    assert data_key.wrap_algorithm is WrapAlgorithm.RSA_OAEP_SHA1
    oaep = asymmetric_padding.OAEP(
        mgf=asymmetric_padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None
    )
    pseudo = rsa_key.decrypt(data_key.encrypted, oaep)
    assert pseudo == b"\x20" + data_key.plaintext + algorithm.value.encode()
    keyring = RsaOaepKeyring(private_key=rsa_key)
    assert keyring.unwrap_data_key(envelope_for(data_key, algorithm), {}) == data_key.plaintext


def test_rsa_keyring_detects_a_suite_swap(rsa_key: rsa.RSAPrivateKey) -> None:
    data_key = RsaOaepKeyring(private_key=rsa_key).wrap_data_key(ContentAlgorithm.AES_GCM, {})
    swapped = envelope_for(data_key, ContentAlgorithm.AES_GCM_COMMITTING)
    with pytest.raises(TamperedMetadataError):
        RsaOaepKeyring(private_key=rsa_key).unwrap_data_key(swapped, {})


def test_rsa_keyring_wrong_key_and_public_only(rsa_key: rsa.RSAPrivateKey) -> None:
    data_key = RsaOaepKeyring(private_key=rsa_key).wrap_data_key(ContentAlgorithm.AES_GCM, {})
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    with pytest.raises(WrongKeyError):
        RsaOaepKeyring(private_key=other).unwrap_data_key(
            envelope_for(data_key, ContentAlgorithm.AES_GCM), {}
        )
    with pytest.raises(KeyringError, match="no private key"):
        RsaOaepKeyring(public_key=rsa_key.public_key()).unwrap_data_key(
            envelope_for(data_key, ContentAlgorithm.AES_GCM), {}
        )


def test_rsa_keyring_reads_legacy_pkcs1(rsa_key: rsa.RSAPrivateKey) -> None:
    data_key = os.urandom(32)
    wrapped = rsa_key.public_key().encrypt(data_key, asymmetric_padding.PKCS1v15())
    keyring = RsaOaepKeyring(private_key=rsa_key)
    assert keyring.unwrap_data_key(legacy_envelope(WrapAlgorithm.RSA, wrapped), {}) == data_key


class RefusingKms:
    """A KMS stand-in that fails the test if the keyring reaches it."""

    def generate_data_key(self, **kwargs: Any) -> Any:
        raise AssertionError("KMS must not be called")

    def decrypt(self, **kwargs: Any) -> Any:
        raise AssertionError("KMS must not be called")


def kms_envelope(
    context: dict[str, str], algorithm=ContentAlgorithm.AES_GCM_COMMITTING
) -> Envelope:
    return Envelope(
        version=FormatVersion.V3,
        content_algorithm=algorithm,
        wrap_algorithm=WrapAlgorithm.KMS_CONTEXT,
        encrypted_data_key=b"blob",
        materials_description=context,
        message_id=bytes(28),
        key_commitment=bytes(28),
    )


@pytest.mark.parametrize(
    "context",
    [{"aws:x-amz-cek-alg": "115"}, {"tenant": "t\u00e9"}, {"t\u00e9": "x"}, {"a": 1}],
)
def test_invalid_contexts_are_refused(context: dict[str, Any]) -> None:
    with pytest.raises(InvalidEncryptionContextError):
        validate_encryption_context(context)
    with pytest.raises(InvalidEncryptionContextError):
        KmsKeyring(RefusingKms(), "alias/k").wrap_data_key(ContentAlgorithm.AES_GCM, context)


@pytest.mark.parametrize(
    "given", [{}, {"tenant": "t2"}, {"tenant": "t1", "extra": "x"}, {"Tenant": "t1"}]
)
def test_context_mismatch_is_caught_before_kms(given: dict[str, str]) -> None:
    envelope = kms_envelope({"tenant": "t1", "aws:x-amz-cek-alg": "115"})
    with pytest.raises(EncryptionContextMismatchError):
        KmsKeyring(RefusingKms(), "alias/k").unwrap_data_key(envelope, given)


def test_suite_label_downgrade_is_caught_before_kms() -> None:
    envelope = kms_envelope({"tenant": "t1", "aws:x-amz-cek-alg": "AES/GCM/NoPadding"})
    with pytest.raises(TamperedMetadataError):
        KmsKeyring(RefusingKms(), "alias/k").unwrap_data_key(envelope, {"tenant": "t1"})


def test_kms_keyring_refuses_raw_wraps_and_decrypt_only_put() -> None:
    raw = Envelope(**{**kms_envelope({}).__dict__, "wrap_algorithm": WrapAlgorithm.AES_GCM})
    with pytest.raises(WrongKeyError, match="not by KMS"):
        KmsKeyring(RefusingKms(), "alias/k").unwrap_data_key(raw, {})
    with pytest.raises(KeyringError, match="only decrypt"):
        KmsKeyring(RefusingKms(), None).wrap_data_key(ContentAlgorithm.AES_GCM, {})


def test_aws_error_code_reads_boto_and_thin_client_shapes() -> None:
    class BotoStyle(Exception):
        response = {"Error": {"Code": "IncorrectKeyException"}}

    class ThinStyle(Exception):
        code = "InvalidCiphertextException"

    class HttpStyle(Exception):
        code = 404

    assert aws_error_code(BotoStyle()) == "IncorrectKeyException"
    assert aws_error_code(ThinStyle()) == "InvalidCiphertextException"
    assert aws_error_code(HttpStyle()) is None
    assert aws_error_code(ValueError()) is None
