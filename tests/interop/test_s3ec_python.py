"""Interoperability with the official ``amazon-s3-encryption-client-python`` 4.0.0.

Both clients use a KMS keyring pointed at the real mock-kms server and moto's S3 server:
objects the official client writes (V3 and V2) are read by our helpers, and objects our
helpers write with CSE-KMS (V3 and V2, object metadata and instruction files, single PUT and
multipart) are read by it.
"""

from __future__ import annotations

import io
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from clients.s3_encryption import (
    AesGcmKeyring,
    EncryptingS3Client,
    EncryptionContextMismatchError,
    FormatVersion,
    KmsKeyring,
    MetadataStorage,
)
from tests.conftest import make_kms_client, require_in_ci
from tests.integration.test_s3_encryption import (  # the moto S3 server fixture and helpers
    new_s3_client,
    s3_endpoint,
)
from tests.support.server import RunningServer

try:
    import s3_encryption as s3ec
    from s3_encryption import S3EncryptionClient, S3EncryptionClientConfig
    from s3_encryption.exceptions import S3EncryptionClientError
    from s3_encryption.materials.keyring import S3Keyring
    from s3_encryption.materials.kms_keyring import KmsKeyring as OfficialKmsKeyring
    from s3_encryption.materials.materials import AlgorithmSuite, CommitmentPolicy
except ImportError:  # pragma: no cover - exercised only where the package is missing
    s3ec = None

__all__ = ["s3_endpoint"]  # re-exported fixture

MIB = 1024 * 1024


@pytest.fixture(autouse=True)
def _official_client_installed() -> None:
    if s3ec is None:
        require_in_ci("amazon-s3-encryption-client-python 4.0.0 is not installed")


@pytest.fixture(scope="module")
def kms_key(kms_server: RunningServer) -> str:
    admin = make_kms_client(kms_server.endpoint)
    key_id: str = admin.create_key(Description="s3ec interop")["KeyMetadata"]["KeyId"]
    return key_id


@pytest.fixture()
def bucket(s3_endpoint: str) -> str:
    name = f"interop-{os.urandom(6).hex()}"
    new_s3_client(s3_endpoint).create_bucket(Bucket=name)
    return name


def official(
    s3_endpoint: str,
    kms_server: RunningServer,
    key_id: str,
    *,
    v2_writer: bool = False,
    keyring: Any = None,
) -> Any:
    """The official client with its own S3 and KMS clients (it registers hooks on them)."""
    if keyring is None:
        keyring = OfficialKmsKeyring(make_kms_client(kms_server.endpoint), key_id)
    if v2_writer:
        config = S3EncryptionClientConfig(
            keyring=keyring,
            encryption_algorithm=AlgorithmSuite.ALG_AES_256_GCM_IV12_TAG16_NO_KDF,
            commitment_policy=CommitmentPolicy.FORBID_ENCRYPT_ALLOW_DECRYPT,
        )
    else:
        # Reads V2 and V3, writes V3 (the default policy would refuse our V2 objects).
        config = S3EncryptionClientConfig(
            keyring=keyring, commitment_policy=CommitmentPolicy.REQUIRE_ENCRYPT_ALLOW_DECRYPT
        )
    return S3EncryptionClient(new_s3_client(s3_endpoint), config)


def ours(
    s3_endpoint: str, kms_server: RunningServer, key_id: str, **options: Any
) -> EncryptingS3Client:
    return EncryptingS3Client(
        new_s3_client(s3_endpoint),
        KmsKeyring(make_kms_client(kms_server.endpoint), key_id),
        **options,
    )


@pytest.mark.parametrize("v2_writer", [False, True], ids=["V3", "V2"])
def test_objects_written_by_the_official_client_are_read_by_ours(
    s3_endpoint: str, kms_server: RunningServer, kms_key: str, bucket: str, v2_writer: bool
) -> None:
    writer = official(s3_endpoint, kms_server, kms_key, v2_writer=v2_writer)
    plaintext = os.urandom(4321)
    context = {"tenant": "t1"}
    writer.put_object(Bucket=bucket, Key="theirs", Body=plaintext, EncryptionContext=context)
    metadata = new_s3_client(s3_endpoint).head_object(Bucket=bucket, Key="theirs")["Metadata"]
    assert ("x-amz-key-v2" in metadata) == v2_writer
    assert ("x-amz-3" in metadata) == (not v2_writer)
    reader = ours(s3_endpoint, kms_server, kms_key)
    response = reader.get_object(Bucket=bucket, Key="theirs", EncryptionContext=context)
    assert response["Body"].read() == plaintext
    with pytest.raises(EncryptionContextMismatchError):
        reader.get_object(Bucket=bucket, Key="theirs", EncryptionContext={"tenant": "t2"})


@pytest.mark.parametrize("version", [FormatVersion.V3, FormatVersion.V2])
@pytest.mark.parametrize(
    "storage", [MetadataStorage.OBJECT_METADATA, MetadataStorage.INSTRUCTION_FILE]
)
def test_objects_written_by_ours_are_read_by_the_official_client(
    s3_endpoint: str,
    kms_server: RunningServer,
    kms_key: str,
    bucket: str,
    version: FormatVersion,
    storage: MetadataStorage,
) -> None:
    writer = ours(
        s3_endpoint, kms_server, kms_key, format_version=version, metadata_storage=storage
    )
    plaintext = os.urandom(2345)
    context = {"tenant": "t1", "job": "interop"}
    writer.put_object(Bucket=bucket, Key="mine", Body=plaintext, EncryptionContext=context)
    reader = official(s3_endpoint, kms_server, kms_key)
    response = reader.get_object(Bucket=bucket, Key="mine", EncryptionContext=context)
    assert response["Body"].read() == plaintext
    with pytest.raises(S3EncryptionClientError):
        reader.get_object(Bucket=bucket, Key="mine", EncryptionContext={"tenant": "t1"})


def test_our_v3_objects_pass_the_official_strict_policy(
    s3_endpoint: str, kms_server: RunningServer, kms_key: str, bucket: str
) -> None:
    """The official default (REQUIRE_ENCRYPT_REQUIRE_DECRYPT) accepts only committed V3."""
    ours(s3_endpoint, kms_server, kms_key).put_object(Bucket=bucket, Key="v3", Body=b"strict")
    strict = S3EncryptionClient(
        new_s3_client(s3_endpoint),
        S3EncryptionClientConfig(
            keyring=OfficialKmsKeyring(make_kms_client(kms_server.endpoint), kms_key)
        ),
    )
    assert strict.get_object(Bucket=bucket, Key="v3")["Body"].read() == b"strict"


def test_multipart_objects_interoperate_both_ways(
    s3_endpoint: str, kms_server: RunningServer, kms_key: str, bucket: str
) -> None:
    plaintext = os.urandom(11 * MIB + 3)
    theirs = official(s3_endpoint, kms_server, kms_key)
    theirs.upload_fileobj(io.BytesIO(plaintext), bucket, "their-mp", multipart_chunksize=5 * MIB)
    mine = ours(s3_endpoint, kms_server, kms_key, part_size=5 * MIB)
    assert mine.get_object(Bucket=bucket, Key="their-mp")["Body"].read() == plaintext
    mine.upload_fileobj(io.BytesIO(plaintext), bucket, "my-mp")
    etag = new_s3_client(s3_endpoint).head_object(Bucket=bucket, Key="my-mp")["ETag"]
    assert etag.strip('"').endswith("-3")
    assert theirs.get_object(Bucket=bucket, Key="my-mp")["Body"].read() == plaintext


class AesGcmDecryptKeyring(S3Keyring if s3ec is not None else object):
    """A decrypt-only AES/GCM keyring (the Java client's wrapping) for the official client."""

    def __init__(self, wrapping_key: bytes) -> None:
        self.wrapping_key = wrapping_key

    def on_encrypt(self, enc_materials: Any) -> Any:
        raise S3EncryptionClientError("decrypt-only keyring")

    def on_decrypt(self, dec_materials: Any, encrypted_data_keys: Any = None) -> Any:
        dec_materials = super().on_decrypt(dec_materials, encrypted_data_keys)
        edk = (encrypted_data_keys or dec_materials.encrypted_data_keys)[0]
        assert edk.key_provider_info == "AES/GCM"
        aad = b"115" if dec_materials.iv is None else b"AES/GCM/NoPadding"
        raw = edk.encrypted_data_key
        dec_materials.plaintext_data_key = AESGCM(self.wrapping_key).decrypt(
            raw[:12], raw[12:], aad
        )
        return dec_materials


@pytest.mark.parametrize("version", [FormatVersion.V3, FormatVersion.V2])
def test_our_cse_c_objects_decrypt_with_the_official_pipeline(
    s3_endpoint: str, kms_server: RunningServer, bucket: str, version: FormatVersion
) -> None:
    """CSE-C: the official client has no AES keyring, but its read path with a
    Java-format keyring decrypts what our AesGcmKeyring wrote."""
    master = os.urandom(32)
    writer = EncryptingS3Client(
        new_s3_client(s3_endpoint), AesGcmKeyring(master), format_version=version
    )
    writer.put_object(Bucket=bucket, Key="cse-c", Body=b"customer-keyed")
    reader = official(s3_endpoint, kms_server, "", keyring=AesGcmDecryptKeyring(master))
    assert reader.get_object(Bucket=bucket, Key="cse-c")["Body"].read() == b"customer-keyed"
