"""Known-answer vectors for the S3 Encryption Client V2/V3 formats (docs/aws-behaviours.md).

The content half was validated by S3EC-Python 4.0.0; the AES/GCM wrap follows Java/Ruby.
"""

from __future__ import annotations

import base64

import pytest

from clients.s3_encryption.content import derive_v3_keys, start_decryption, start_encryption
from clients.s3_encryption.formats import ContentAlgorithm, FormatVersion, WrapAlgorithm
from clients.s3_encryption.keyrings import AesGcmKeyring, aes_gcm_unwrap, aes_gcm_wrap
from clients.s3_encryption.metadata import Envelope, decode_envelope, encode_envelope

WRAP_KEY = bytes(range(0x40, 0x60))
DATA_KEY = bytes(range(0x00, 0x20))
MESSAGE_ID = bytes(range(0x20, 0x3C))
WRAP_IV = bytes(range(0x60, 0x6C))
V2_CONTENT_IV = bytes(range(0x70, 0x7C))
PLAINTEXT = b"hello s3ec"

V3_DEK = "08b9e427142f34dcdb3360db13f3d10e5499b1d89313d88adcdb8cb9c55188f4"
V3_COMMITMENT_B64 = "VosJl07PIgE1Pm++NwjXrGG85dMyJBXZ8Kiu5Q=="
V3_BODY = "93ccf3ebf3324dd7cb5737a067e0316cc248f5afac94e8381189"
V3_WRAPPED_B64 = "YGFiY2RlZmdoaWprrCkLBgORlqEBiHM9CYtSBB89/AIDK4cZFmPRo7ffGeSsHmx7XJD7rBE7V14xTz8a"
V2_BODY = "7fe2d64bdce9ef072149a417e6eb7841b58fc4bacc437eb4609e"
V2_WRAPPED_B64 = "YGFiY2RlZmdoaWprrCkLBgORlqEBiHM9CYtSBB89/AIDK4cZFmPRo7ffGeTKIFtWfhR0wLTbkxHcd/ae"


def test_v3_key_derivation_matches_vector() -> None:
    content_key, commitment = derive_v3_keys(DATA_KEY, MESSAGE_ID)
    assert content_key.hex() == V3_DEK
    assert base64.b64encode(commitment).decode() == V3_COMMITMENT_B64


def test_v3_content_matches_vector() -> None:
    encryptor, parameters = start_encryption(
        ContentAlgorithm.AES_GCM_COMMITTING, DATA_KEY, message_id=MESSAGE_ID
    )
    body = encryptor.update(PLAINTEXT) + encryptor.finalize()
    assert body.hex() == V3_BODY
    assert parameters.message_id == MESSAGE_ID
    assert base64.b64encode(parameters.key_commitment or b"").decode() == V3_COMMITMENT_B64


def test_v2_content_matches_vector() -> None:
    encryptor, parameters = start_encryption(ContentAlgorithm.AES_GCM, DATA_KEY, iv=V2_CONTENT_IV)
    assert (encryptor.update(PLAINTEXT) + encryptor.finalize()).hex() == V2_BODY
    assert parameters.iv == V2_CONTENT_IV


@pytest.mark.parametrize(
    ("algorithm", "expected"),
    [
        (ContentAlgorithm.AES_GCM_COMMITTING, V3_WRAPPED_B64),
        (ContentAlgorithm.AES_GCM, V2_WRAPPED_B64),
    ],
)
def test_aes_gcm_key_wrap_matches_vector(algorithm: ContentAlgorithm, expected: str) -> None:
    wrapped = aes_gcm_wrap(WRAP_KEY, DATA_KEY, algorithm, iv=WRAP_IV)
    assert base64.b64encode(wrapped).decode() == expected
    assert aes_gcm_unwrap(WRAP_KEY, wrapped, algorithm) == DATA_KEY


def test_v3_vector_decrypts_through_metadata_keyring_and_content() -> None:
    """The full read path on the vector's metadata, as a reader sees it from S3."""
    metadata = {
        "x-amz-c": "115",
        "x-amz-3": V3_WRAPPED_B64,
        "x-amz-w": "02",
        "x-amz-d": V3_COMMITMENT_B64,
        "x-amz-i": base64.b64encode(MESSAGE_ID).decode(),
    }
    envelope = decode_envelope(metadata, lambda: None)
    assert envelope.version is FormatVersion.V3
    assert envelope.wrap_algorithm is WrapAlgorithm.AES_GCM
    data_key = AesGcmKeyring(WRAP_KEY).unwrap_data_key(envelope, {})
    decryptor = start_decryption(
        envelope.content_algorithm,
        data_key,
        message_id=envelope.message_id,
        key_commitment=envelope.key_commitment,
    )
    assert decryptor.update(bytes.fromhex(V3_BODY)) + decryptor.finalize() == PLAINTEXT


def test_v2_vector_decrypts_through_metadata_keyring_and_content() -> None:
    metadata = {
        "x-amz-key-v2": V2_WRAPPED_B64,
        "x-amz-iv": base64.b64encode(V2_CONTENT_IV).decode(),
        "x-amz-cek-alg": "AES/GCM/NoPadding",
        "x-amz-tag-len": "128",
        "x-amz-wrap-alg": "AES/GCM",
        "x-amz-matdesc": "{}",
    }
    envelope = decode_envelope(metadata, lambda: None)
    assert envelope.version is FormatVersion.V2
    data_key = AesGcmKeyring(WRAP_KEY).unwrap_data_key(envelope, {})
    decryptor = start_decryption(envelope.content_algorithm, data_key, iv=envelope.iv)
    assert decryptor.update(bytes.fromhex(V2_BODY)) + decryptor.finalize() == PLAINTEXT


def test_vector_envelopes_encode_to_the_reference_metadata() -> None:
    envelope = Envelope(
        version=FormatVersion.V3,
        content_algorithm=ContentAlgorithm.AES_GCM_COMMITTING,
        wrap_algorithm=WrapAlgorithm.AES_GCM,
        encrypted_data_key=base64.b64decode(V3_WRAPPED_B64),
        message_id=MESSAGE_ID,
        key_commitment=base64.b64decode(V3_COMMITMENT_B64),
    )
    assert encode_envelope(envelope) == {
        "x-amz-c": "115",
        "x-amz-3": V3_WRAPPED_B64,
        "x-amz-w": "02",
        "x-amz-d": V3_COMMITMENT_B64,
        "x-amz-i": base64.b64encode(MESSAGE_ID).decode(),
    }


def test_aes_gcm_wrap_aad_binds_the_format_version() -> None:
    """A V2-wrapped key presented as V3 (or the reverse) must not unwrap: AAD differs."""
    from clients.s3_encryption.errors import WrongKeyError

    v2_wrapped = base64.b64decode(V2_WRAPPED_B64)
    with pytest.raises(WrongKeyError):
        aes_gcm_unwrap(WRAP_KEY, v2_wrapped, ContentAlgorithm.AES_GCM_COMMITTING)
