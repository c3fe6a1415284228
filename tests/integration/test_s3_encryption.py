"""Client-side encryption end to end: moto's S3 server (a child process, for S3 only) and the
real mock-kms server (``kms_server`` fixture) for KMS.

moto runs in its own process so the memory test measures only this process's allocations.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import subprocess
import sys
import time
import tracemalloc
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from clients.kms import KmsClient
from clients.s3_encryption import (
    AesGcmKeyring,
    EncryptingS3Client,
    EncryptionContextMismatchError,
    FormatVersion,
    InvalidRangeError,
    KeyCommitmentError,
    KmsKeyring,
    LegacyFormatError,
    MetadataStorage,
    ObjectTooLargeError,
    RangedGetNotAllowedError,
    RsaOaepKeyring,
    TamperedMetadataError,
    TamperedObjectError,
    UnknownFormatError,
    WrongKeyError,
)
from clients.s3_encryption.formats import GCM_MAX_CONTENT_LENGTH, ContentAlgorithm
from clients.s3_encryption.keyrings import aes_gcm_unwrap
from tests.conftest import TEST_CREDENTIALS, make_kms_client
from tests.support.server import RunningServer, free_port

PART_SIZE = 1024 * 1024
"""Part size for multipart tests; moto is told to accept parts this small."""

S3_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}
VERSIONS = [FormatVersion.V3, FormatVersion.V2]
STORAGES = [MetadataStorage.OBJECT_METADATA, MetadataStorage.INSTRUCTION_FILE]

_MOTO_SERVER = """
import signal, sys
from moto.server import ThreadedMotoServer
server = ThreadedMotoServer(ip_address="127.0.0.1", port=int(sys.argv[1]), verbose=False)
server.start()
signal.sigwait({signal.SIGTERM, signal.SIGINT})
server.stop()
"""


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """moto's ThreadedMotoServer in a child process on a free loopback port (S3 only)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("moto") / "moto.log"
    env = {**os.environ, "S3_UPLOAD_PART_MIN_SIZE": str(PART_SIZE)}
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-c", _MOTO_SERVER, str(port)], stdout=log, stderr=log, env=env
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if process.poll() is not None:
                pytest.fail(f"moto server exited:\n{log_path.read_text()}")
            try:
                urllib.request.urlopen(endpoint + "/moto-api/data.json", timeout=2).close()
                break
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    pytest.fail(f"moto server did not start:\n{log_path.read_text()}")
                time.sleep(0.2)
        yield endpoint
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def new_s3_client(endpoint: str) -> Any:
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", **S3_CREDENTIALS)


@pytest.fixture()
def s3(s3_endpoint: str) -> Any:
    """A plain boto3 S3 client: what S3 really stores."""
    return new_s3_client(s3_endpoint)


@pytest.fixture()
def bucket(s3: Any) -> str:
    name = f"cse-{uuid.uuid4().hex[:16]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture(scope="module")
def kms_admin(kms_server: RunningServer) -> Any:
    return make_kms_client(kms_server.endpoint)


@pytest.fixture(scope="module")
def kms_key(kms_admin: Any) -> str:
    key_id: str = kms_admin.create_key(Description="s3 cse tests")["KeyMetadata"]["KeyId"]
    return key_id


@pytest.fixture(scope="module")
def other_kms_key(kms_admin: Any) -> str:
    key_id: str = kms_admin.create_key(Description="s3 cse other")["KeyMetadata"]["KeyId"]
    return key_id


@pytest.fixture(scope="module")
def thin_kms(kms_server: RunningServer) -> KmsClient:
    return KmsClient(endpoint_url=kms_server.endpoint, region_name="us-east-1", **TEST_CREDENTIALS)


def cse(s3_client: Any, keyring: Any, **options: Any) -> EncryptingS3Client:
    return EncryptingS3Client(s3_client, keyring, **options)


def stored(s3: Any, bucket: str, key: str) -> tuple[bytes, dict[str, str]]:
    response = s3.get_object(Bucket=bucket, Key=key)
    return response["Body"].read(), response["Metadata"]


def rewrite(s3: Any, bucket: str, key: str, body: bytes, metadata: dict[str, str]) -> None:
    s3.put_object(Bucket=bucket, Key=key, Body=body, Metadata=metadata)


# ------------------------------------------------------------------ round trips


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("storage", STORAGES)
@pytest.mark.parametrize("kms_flavour", ["boto3", "thin"])
def test_cse_kms_round_trip(
    s3: Any,
    bucket: str,
    kms_admin: Any,
    thin_kms: KmsClient,
    kms_key: str,
    version: FormatVersion,
    storage: MetadataStorage,
    kms_flavour: str,
) -> None:
    kms = kms_admin if kms_flavour == "boto3" else thin_kms
    client = cse(s3, KmsKeyring(kms, kms_key), format_version=version, metadata_storage=storage)
    plaintext = os.urandom(5000)
    context = {"tenant": "t1", "purpose": "round-trip"}
    client.put_object(
        Bucket=bucket,
        Key="obj",
        Body=plaintext,
        EncryptionContext=context,
        Metadata={"owner": "me"},
        ContentType="application/x-test",
    )
    body, metadata = stored(s3, bucket, "obj")
    assert len(body) == len(plaintext) + 16
    assert metadata["owner"] == "me"
    if storage is MetadataStorage.OBJECT_METADATA:
        expected_keys = (
            {"x-amz-c", "x-amz-3", "x-amz-w", "x-amz-d", "x-amz-i", "x-amz-t"}
            if version is FormatVersion.V3
            else {
                "x-amz-key-v2",
                "x-amz-iv",
                "x-amz-cek-alg",
                "x-amz-tag-len",
                "x-amz-wrap-alg",
                "x-amz-matdesc",
            }
        )
        assert set(metadata) - {"owner"} == expected_keys
        stored_context = json.loads(metadata.get("x-amz-t") or metadata["x-amz-matdesc"])
    else:
        instruction_body, instruction_meta = stored(s3, bucket, "obj.instruction")
        assert instruction_meta == {"x-amz-crypto-instr-file": ""}
        instruction = json.loads(instruction_body)
        on_object = set(metadata) - {"owner"}
        if version is FormatVersion.V3:
            assert on_object == {"x-amz-c", "x-amz-d", "x-amz-i"}
            assert set(instruction) == {"x-amz-3", "x-amz-w", "x-amz-t"}
        else:
            assert on_object == set()
            assert "x-amz-key-v2" in instruction
        stored_context = json.loads(instruction.get("x-amz-t") or instruction["x-amz-matdesc"])
    suite = "115" if version is FormatVersion.V3 else "AES/GCM/NoPadding"
    assert stored_context == {**context, "aws:x-amz-cek-alg": suite}
    response = client.get_object(Bucket=bucket, Key="obj", EncryptionContext=context)
    assert response["Body"].read() == plaintext
    assert response["ContentLength"] == len(plaintext)
    assert response["ContentType"] == "application/x-test"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("storage", STORAGES)
def test_cse_c_aes_round_trip(
    s3: Any, bucket: str, version: FormatVersion, storage: MetadataStorage
) -> None:
    keyring = AesGcmKeyring(os.urandom(32), {"key-name": "primary"})
    client = cse(s3, keyring, format_version=version, metadata_storage=storage)
    client.put_object(Bucket=bucket, Key="aes", Body=b"customer key data")
    assert client.get_object(Bucket=bucket, Key="aes")["Body"].read() == b"customer key data"
    _, metadata = stored(s3, bucket, "aes")
    if storage is MetadataStorage.OBJECT_METADATA:
        if version is FormatVersion.V3:
            assert metadata["x-amz-w"] == "02"
            assert json.loads(metadata["x-amz-m"]) == {"key-name": "primary"}
        else:
            assert metadata["x-amz-wrap-alg"] == "AES/GCM"
            assert len(base64.b64decode(metadata["x-amz-key-v2"])) == 60


@pytest.mark.parametrize("version", VERSIONS)
def test_cse_c_rsa_round_trip(s3: Any, bucket: str, version: FormatVersion) -> None:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    writer = cse(s3, RsaOaepKeyring(public_key=private_key.public_key()), format_version=version)
    writer.put_object(Bucket=bucket, Key="rsa", Body=b"rsa wrapped")
    reader = cse(s3, RsaOaepKeyring(private_key=private_key))
    assert reader.get_object(Bucket=bucket, Key="rsa")["Body"].read() == b"rsa wrapped"
    _, metadata = stored(s3, bucket, "rsa")
    label = metadata.get("x-amz-w") or metadata["x-amz-wrap-alg"]
    assert label == ("22" if version is FormatVersion.V3 else "RSA-OAEP-SHA1")


def test_a_v3_reader_reads_v2_objects(s3: Any, bucket: str, kms_admin: Any, kms_key: str) -> None:
    cse(s3, KmsKeyring(kms_admin, kms_key), format_version=FormatVersion.V2).put_object(
        Bucket=bucket, Key="v2", Body=b"older"
    )
    reader = cse(s3, KmsKeyring(kms_admin, kms_key))
    assert reader.get_object(Bucket=bucket, Key="v2")["Body"].read() == b"older"


def test_decrypt_any_kms_keyring(s3: Any, bucket: str, kms_admin: Any, kms_key: str) -> None:
    cse(s3, KmsKeyring(kms_admin, kms_key)).put_object(Bucket=bucket, Key="k", Body=b"any")
    reader = cse(s3, KmsKeyring(kms_admin, None))
    assert reader.get_object(Bucket=bucket, Key="k")["Body"].read() == b"any"


# ------------------------------------------------------------------ what S3 stores


@pytest.mark.parametrize("flavour", ["cse-kms", "cse-c"])
def test_s3_stores_no_plaintext_and_no_plaintext_data_key(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str, flavour: str
) -> None:
    plaintext = b"TOP-SECRET-PAYLOAD:" + os.urandom(64) + b":END" * 100
    master = os.urandom(32)
    context = {"a": "b"} if flavour == "cse-kms" else {}
    for storage in STORAGES:
        keyring = KmsKeyring(kms_admin, kms_key) if flavour == "cse-kms" else AesGcmKeyring(master)
        client = cse(s3, keyring, metadata_storage=storage)
        key = f"secret-{storage.value}"
        client.put_object(Bucket=bucket, Key=key, Body=plaintext, EncryptionContext=context)
        body, metadata = stored(s3, bucket, key)
        everything = body + json.dumps(metadata).encode()
        envelope = dict(metadata)
        if storage is MetadataStorage.INSTRUCTION_FILE:
            instruction, _ = stored(s3, bucket, key + ".instruction")
            everything += instruction
            envelope.update(json.loads(instruction))
        # Recover the data key the way an authorised reader would, then look for it.
        wrapped = base64.b64decode(envelope["x-amz-3"])
        if flavour == "cse-kms":
            data_key = kms_admin.decrypt(
                CiphertextBlob=wrapped, EncryptionContext=json.loads(envelope["x-amz-t"])
            )["Plaintext"]
        else:
            data_key = aes_gcm_unwrap(master, wrapped, ContentAlgorithm.AES_GCM_COMMITTING)
            assert master not in everything
        assert len(data_key) == 32
        for leak in (data_key, base64.b64encode(data_key), data_key.hex().encode()):
            assert leak not in everything
        assert b"TOP-SECRET" not in everything and b":END:END" not in everything
        for start in range(0, len(plaintext) - 16, 16):
            assert plaintext[start : start + 16] not in everything
        assert (
            client.get_object(Bucket=bucket, Key=key, EncryptionContext=context)["Body"].read()
            == plaintext
        )


# ------------------------------------------------------------------ errors


def test_wrong_kms_key(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str, other_kms_key: str
) -> None:
    cse(s3, KmsKeyring(kms_admin, kms_key)).put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(WrongKeyError) as caught:
        cse(s3, KmsKeyring(kms_admin, other_kms_key)).get_object(Bucket=bucket, Key="k")
    assert caught.value.code in {"IncorrectKeyException", "InvalidCiphertextException"}


def test_wrong_kms_key_with_thin_client(
    s3: Any, bucket: str, thin_kms: KmsClient, kms_key: str, other_kms_key: str
) -> None:
    cse(s3, KmsKeyring(thin_kms, kms_key)).put_object(Bucket=bucket, Key="k", Body=b"x")
    with pytest.raises(WrongKeyError):
        cse(s3, KmsKeyring(thin_kms, other_kms_key)).get_object(Bucket=bucket, Key="k")


def test_wrong_aes_and_rsa_keys(s3: Any, bucket: str) -> None:
    cse(s3, AesGcmKeyring(os.urandom(32))).put_object(Bucket=bucket, Key="aes", Body=b"x")
    with pytest.raises(WrongKeyError):
        cse(s3, AesGcmKeyring(os.urandom(32))).get_object(Bucket=bucket, Key="aes")
    first = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    second = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cse(s3, RsaOaepKeyring(private_key=first)).put_object(Bucket=bucket, Key="rsa", Body=b"x")
    with pytest.raises(WrongKeyError):
        cse(s3, RsaOaepKeyring(private_key=second)).get_object(Bucket=bucket, Key="rsa")
    with pytest.raises(WrongKeyError):
        cse(s3, RsaOaepKeyring(private_key=second)).get_object(Bucket=bucket, Key="aes")


@pytest.mark.parametrize("given", [None, {"tenant": "t2"}, {"tenant": "t1", "more": "x"}])
def test_wrong_encryption_context(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str, given: dict[str, str] | None
) -> None:
    client = cse(s3, KmsKeyring(kms_admin, kms_key))
    client.put_object(Bucket=bucket, Key="ctx", Body=b"x", EncryptionContext={"tenant": "t1"})
    with pytest.raises(EncryptionContextMismatchError):
        client.get_object(Bucket=bucket, Key="ctx", EncryptionContext=given)


def test_context_edited_in_metadata_is_refused_by_kms(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str
) -> None:
    """An attacker who rewrites x-amz-t and gives the matching context still gets nothing."""
    client = cse(s3, KmsKeyring(kms_admin, kms_key))
    client.put_object(Bucket=bucket, Key="ctx", Body=b"x", EncryptionContext={"tenant": "t1"})
    body, metadata = stored(s3, bucket, "ctx")
    metadata["x-amz-t"] = json.dumps({"tenant": "evil", "aws:x-amz-cek-alg": "115"})
    rewrite(s3, bucket, "ctx", body, metadata)
    with pytest.raises(WrongKeyError) as caught:
        client.get_object(Bucket=bucket, Key="ctx", EncryptionContext={"tenant": "evil"})
    assert caught.value.code == "InvalidCiphertextException"


@pytest.mark.parametrize("version", VERSIONS)
def test_tampered_and_truncated_objects(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str, tmp_path: Path, version: FormatVersion
) -> None:
    client = cse(s3, KmsKeyring(kms_admin, kms_key), format_version=version)
    client.put_object(Bucket=bucket, Key="t", Body=os.urandom(1000))
    body, metadata = stored(s3, bucket, "t")
    flipped = bytearray(body)
    flipped[500] ^= 0x80
    for broken in (bytes(flipped), body[:-1], body[:600], body[:10]):
        rewrite(s3, bucket, "t", broken, metadata)
        with pytest.raises(TamperedObjectError):
            client.get_object(Bucket=bucket, Key="t")
        target = tmp_path / "out.bin"
        with pytest.raises(TamperedObjectError):
            client.download_file(bucket, "t", str(target))
        assert not target.exists()
        assert [p.name for p in tmp_path.iterdir()] == []  # no temporary file left behind


def test_tampered_v3_commitment(s3: Any, bucket: str, kms_admin: Any, kms_key: str) -> None:
    client = cse(s3, KmsKeyring(kms_admin, kms_key))
    client.put_object(Bucket=bucket, Key="c", Body=b"committed")
    body, metadata = stored(s3, bucket, "c")
    commitment = bytearray(base64.b64decode(metadata["x-amz-d"]))
    commitment[0] ^= 1
    metadata["x-amz-d"] = base64.b64encode(bytes(commitment)).decode()
    rewrite(s3, bucket, "c", body, metadata)
    with pytest.raises(KeyCommitmentError):
        client.get_object(Bucket=bucket, Key="c")


def test_swapped_data_key_between_objects_fails_commitment(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str
) -> None:
    client = cse(s3, KmsKeyring(kms_admin, kms_key))
    client.put_object(Bucket=bucket, Key="a", Body=b"object a")
    client.put_object(Bucket=bucket, Key="b", Body=b"object b")
    body_a, meta_a = stored(s3, bucket, "a")
    _, meta_b = stored(s3, bucket, "b")
    rewrite(s3, bucket, "a", body_a, {**meta_a, "x-amz-3": meta_b["x-amz-3"]})
    with pytest.raises(KeyCommitmentError):
        client.get_object(Bucket=bucket, Key="a")


def test_unknown_formats(s3: Any, bucket: str, kms_admin: Any, kms_key: str) -> None:
    client = cse(
        s3, KmsKeyring(kms_admin, kms_key), metadata_storage=MetadataStorage.INSTRUCTION_FILE
    )
    s3.put_object(Bucket=bucket, Key="plain", Body=b"not encrypted")
    with pytest.raises(UnknownFormatError, match="not client-side encrypted"):
        client.get_object(Bucket=bucket, Key="plain")
    client.put_object(Bucket=bucket, Key="lost", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="lost.instruction")
    with pytest.raises(UnknownFormatError, match="instruction file is missing"):
        client.get_object(Bucket=bucket, Key="lost")


def test_forged_instruction_file_is_rejected(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str
) -> None:
    v3 = cse(s3, KmsKeyring(kms_admin, kms_key), metadata_storage=MetadataStorage.INSTRUCTION_FILE)
    v2 = cse(
        s3,
        KmsKeyring(kms_admin, kms_key),
        metadata_storage=MetadataStorage.INSTRUCTION_FILE,
        format_version=FormatVersion.V2,
    )
    v3.put_object(Bucket=bucket, Key="victim", Body=b"v3 object")
    v2.put_object(Bucket=bucket, Key="donor", Body=b"v2 object")
    donor_instruction, donor_meta = stored(s3, bucket, "donor.instruction")
    rewrite(s3, bucket, "victim.instruction", donor_instruction, donor_meta)
    with pytest.raises(TamperedMetadataError):
        v3.get_object(Bucket=bucket, Key="victim")


def test_put_object_argument_checks(s3: Any, bucket: str, kms_admin: Any, kms_key: str) -> None:
    client = cse(s3, KmsKeyring(kms_admin, kms_key))
    with pytest.raises(ValueError, match="ciphertext"):
        client.put_object(Bucket=bucket, Key="k", Body=b"x", ContentMD5="abc")
    with pytest.raises(ValueError, match="reserved"):
        client.put_object(Bucket=bucket, Key="k", Body=b"x", Metadata={"x-amz-key-v2": "x"})


def test_delete_object_removes_the_instruction_file(s3: Any, bucket: str) -> None:
    client = cse(
        s3, AesGcmKeyring(os.urandom(32)), metadata_storage=MetadataStorage.INSTRUCTION_FILE
    )
    client.put_object(Bucket=bucket, Key="d", Body=b"x")
    client.delete_object(Bucket=bucket, Key="d")
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    assert listed == []


# ------------------------------------------------------------------ legacy V1


def _legacy_cbc(data_key: bytes, plaintext: bytes) -> tuple[bytes, bytes]:
    iv = os.urandom(16)
    padder = padding.PKCS7(128).padder()
    encryptor = Cipher(algorithms.AES(data_key), modes.CBC(iv)).encryptor()
    padded = padder.update(plaintext) + padder.finalize()
    return iv, encryptor.update(padded) + encryptor.finalize()


def test_v1_objects_need_the_legacy_opt_in(s3: Any, bucket: str) -> None:
    """A true V1 object as the Java v1 SDK / Ruby V1 wrote it: AES-ECB key wrap, CBC body."""
    master, data_key = os.urandom(32), os.urandom(32)
    padder = padding.PKCS7(128).padder()
    ecb = Cipher(algorithms.AES(master), modes.ECB()).encryptor()
    wrapped = ecb.update(padder.update(data_key) + padder.finalize()) + ecb.finalize()
    iv, body = _legacy_cbc(data_key, b"written in 2014")
    s3.put_object(
        Bucket=bucket,
        Key="v1",
        Body=body,
        Metadata={
            "x-amz-key": base64.b64encode(wrapped).decode(),
            "x-amz-iv": base64.b64encode(iv).decode(),
            "x-amz-matdesc": "{}",
            "x-amz-unencrypted-content-length": "15",
        },
    )
    with pytest.raises(LegacyFormatError, match="allow_legacy_formats"):
        cse(s3, AesGcmKeyring(master)).get_object(Bucket=bucket, Key="v1")
    reader = cse(s3, AesGcmKeyring(master), allow_legacy_formats=True)
    assert reader.get_object(Bucket=bucket, Key="v1")["Body"].read() == b"written in 2014"


def test_legacy_kms_wrap_needs_the_opt_in(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str
) -> None:
    """Java v1 SDK EncryptionOnly with KMS: x-amz-wrap-alg "kms", CBC content."""
    context = {"kms_cmk_id": kms_key}
    generated = kms_admin.generate_data_key(
        KeyId=kms_key, KeySpec="AES_256", EncryptionContext=context
    )
    iv, body = _legacy_cbc(generated["Plaintext"], b"legacy kms object")
    s3.put_object(
        Bucket=bucket,
        Key="kms-v1",
        Body=body,
        Metadata={
            "x-amz-key-v2": base64.b64encode(generated["CiphertextBlob"]).decode(),
            "x-amz-iv": base64.b64encode(iv).decode(),
            "x-amz-wrap-alg": "kms",
            "x-amz-cek-alg": "AES/CBC/PKCS5Padding",
            "x-amz-matdesc": json.dumps(context),
        },
    )
    with pytest.raises(LegacyFormatError):
        cse(s3, KmsKeyring(kms_admin, kms_key)).get_object(Bucket=bucket, Key="kms-v1")
    reader = cse(s3, KmsKeyring(kms_admin, kms_key), allow_legacy_formats=True)
    assert reader.get_object(Bucket=bucket, Key="kms-v1")["Body"].read() == b"legacy kms object"


# ------------------------------------------------------------------ ranged GET


@pytest.mark.parametrize("version", VERSIONS)
def test_ranged_get(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str, version: FormatVersion
) -> None:
    plaintext = os.urandom(1000)
    writer = cse(s3, KmsKeyring(kms_admin, kms_key), format_version=version)
    writer.put_object(Bucket=bucket, Key="r", Body=plaintext)
    reader = cse(s3, KmsKeyring(kms_admin, kms_key), allow_unauthenticated_ranged_get=True)
    cases = {
        "bytes=0-0": plaintext[0:1],
        "bytes=0-15": plaintext[0:16],
        "bytes=15-16": plaintext[15:17],
        "bytes=100-355": plaintext[100:356],
        "bytes=990-999": plaintext[990:],
        "bytes=990-5000": plaintext[990:],
        "bytes=500-": plaintext[500:],
        "bytes=-10": plaintext[-10:],
        "bytes=-5000": plaintext,
    }
    for spec, expected in cases.items():
        response = reader.get_object(Bucket=bucket, Key="r", Range=spec)
        assert response["Body"].read() == expected, spec
        assert response["ContentLength"] == len(expected)
        assert response["ContentRange"].endswith("/1000")
    with pytest.raises(InvalidRangeError):
        reader.get_object(Bucket=bucket, Key="r", Range="bytes=1000-1001")
    with pytest.raises(InvalidRangeError):
        reader.get_object(Bucket=bucket, Key="r", Range="bytes=5000-6000")
    with pytest.raises(InvalidRangeError):
        reader.get_object(Bucket=bucket, Key="r", Range="rows=1-2")
    with pytest.raises(RangedGetNotAllowedError):
        writer.get_object(Bucket=bucket, Key="r", Range="bytes=0-10")


def test_ranged_get_on_a_multipart_object(s3: Any, bucket: str) -> None:
    keyring = AesGcmKeyring(os.urandom(32))
    plaintext = os.urandom(3 * PART_SIZE + 123)
    cse(s3, keyring, part_size=PART_SIZE).upload_fileobj(io.BytesIO(plaintext), bucket, "mp")
    reader = cse(s3, keyring, allow_unauthenticated_ranged_get=True)
    first = PART_SIZE - 7
    response = reader.get_object(Bucket=bucket, Key="mp", Range=f"bytes={first}-{first + 99}")
    assert response["Body"].read() == plaintext[first : first + 100]


def test_ranged_get_still_checks_the_v3_commitment(
    s3: Any, bucket: str, kms_admin: Any, kms_key: str
) -> None:
    cse(s3, KmsKeyring(kms_admin, kms_key)).put_object(Bucket=bucket, Key="rc", Body=b"x" * 100)
    body, metadata = stored(s3, bucket, "rc")
    metadata["x-amz-i"] = base64.b64encode(os.urandom(28)).decode()
    rewrite(s3, bucket, "rc", body, metadata)
    reader = cse(s3, KmsKeyring(kms_admin, kms_key), allow_unauthenticated_ranged_get=True)
    with pytest.raises(KeyCommitmentError):
        reader.get_object(Bucket=bucket, Key="rc", Range="bytes=0-9")


# ------------------------------------------------------------------ streaming and multipart


class Pipe(io.RawIOBase):
    """A non-seekable stream that returns short reads, like a pipe."""

    def __init__(self, data: bytes) -> None:
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        chunk = self._data.read(min(len(buffer), 70_000))
        buffer[: len(chunk)] = chunk
        return len(chunk)


@pytest.mark.parametrize("size", [PART_SIZE - 1, PART_SIZE, 3 * PART_SIZE, 3 * PART_SIZE + 5])
@pytest.mark.parametrize("version", VERSIONS)
def test_multipart_upload_and_download(
    s3: Any, bucket: str, tmp_path: Path, size: int, version: FormatVersion
) -> None:
    keyring = AesGcmKeyring(os.urandom(32))
    client = cse(s3, keyring, part_size=PART_SIZE, format_version=version)
    plaintext = os.urandom(size)
    progress: list[int] = []
    client.upload_fileobj(Pipe(plaintext), bucket, "big", Callback=progress.append)
    assert sum(progress) == size
    head = s3.head_object(Bucket=bucket, Key="big")
    assert head["ContentLength"] == size + 16
    multipart = size >= PART_SIZE
    assert head["ETag"].strip('"').endswith(f"-{size // PART_SIZE + 1}") == multipart
    target = tmp_path / "big.out"
    client.download_file(bucket, "big", str(target))
    assert hashlib.sha256(target.read_bytes()).digest() == hashlib.sha256(plaintext).digest()
    sink = io.BytesIO()
    client.download_fileobj(bucket, "big", sink)
    assert sink.getvalue() == plaintext


def test_upload_file_with_instruction_file_and_kms(
    s3: Any, bucket: str, tmp_path: Path, kms_admin: Any, kms_key: str
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(2 * PART_SIZE + 1))
    client = cse(
        s3,
        KmsKeyring(kms_admin, kms_key),
        part_size=PART_SIZE,
        metadata_storage=MetadataStorage.INSTRUCTION_FILE,
    )
    client.upload_file(str(source), bucket, "f", EncryptionContext={"file": "in.bin"})
    client.download_file(
        bucket, "f", str(tmp_path / "out.bin"), EncryptionContext={"file": "in.bin"}
    )
    assert (tmp_path / "out.bin").read_bytes() == source.read_bytes()


def test_verify_then_release_spills_and_delayed_mode_streams(s3: Any, bucket: str) -> None:
    keyring = AesGcmKeyring(os.urandom(32))
    plaintext = os.urandom(300_000)
    cse(s3, keyring).put_object(Bucket=bucket, Key="s", Body=plaintext)
    small_buffer = cse(s3, keyring, buffer_size=4096)
    assert small_buffer.get_object(Bucket=bucket, Key="s")["Body"].read() == plaintext
    body, metadata = stored(s3, bucket, "s")
    rewrite(s3, bucket, "s", body[:-1] + bytes([body[-1] ^ 1]), metadata)
    with pytest.raises(TamperedObjectError):
        small_buffer.get_object(Bucket=bucket, Key="s")
    delayed = cse(s3, keyring, delayed_authentication=True)
    response = delayed.get_object(Bucket=bucket, Key="s")
    assert response["Body"].read(1000) == plaintext[:1000]  # released before the tag is checked
    with pytest.raises(TamperedObjectError):
        response["Body"].read()


class HugeStream(io.RawIOBase):
    """Claims to be larger than the GCM limit; any read would be a bug."""

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return 0

    def seek(self, offset: int, whence: int = 0) -> int:
        return GCM_MAX_CONTENT_LENGTH + 1 if whence == os.SEEK_END else 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        raise AssertionError("the size check must come before reading")


def test_gcm_limit_is_enforced_before_uploading(s3: Any, bucket: str) -> None:
    client = cse(s3, AesGcmKeyring(os.urandom(32)))
    with pytest.raises(ObjectTooLargeError):
        client.upload_fileobj(HugeStream(), bucket, "huge")
    assert s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_memory_stays_bounded_for_an_object_20_parts_long(
    s3: Any, bucket: str, tmp_path: Path
) -> None:
    """Peak traced memory of upload_file / download_file for 20 x part size stays below a
    fixed bound (a few parts), far below the object size."""
    size = 20 * PART_SIZE
    bound = 6 * PART_SIZE
    source = tmp_path / "big.bin"
    with open(source, "wb") as out:
        for _ in range(20):
            out.write(os.urandom(PART_SIZE))
    client = cse(s3, AesGcmKeyring(os.urandom(32)), part_size=PART_SIZE)
    client.put_object(Bucket=bucket, Key="warm-up", Body=b"x")  # connection pool, imports

    tracemalloc.start()
    try:
        client.upload_file(str(source), bucket, "big")
        _, upload_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        client.download_file(bucket, "big", str(tmp_path / "big.out"))
        _, download_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(
        f"object {size} B, part {PART_SIZE} B: upload peak {upload_peak} B, "
        f"download peak {download_peak} B"
    )
    assert upload_peak < bound, upload_peak
    assert download_peak < bound, download_peak
    assert (tmp_path / "big.out").stat().st_size == size
    assert s3.head_object(Bucket=bucket, Key="big")["ContentLength"] == size + 16


# ------------------------------------------------------------------ command line


def test_cli_put_and_get(
    s3_endpoint: str, s3: Any, bucket: str, kms_server: RunningServer, kms_key: str, tmp_path: Path
) -> None:
    source = tmp_path / "in.bin"
    source.write_bytes(os.urandom(3 * PART_SIZE + 10))
    key_file = tmp_path / "master.key"
    key_file.write_bytes(os.urandom(32))
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MOCK_KMS_"))},
        "AWS_ACCESS_KEY_ID": TEST_CREDENTIALS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": TEST_CREDENTIALS["aws_secret_access_key"],
    }
    common = ["--endpoint-url", s3_endpoint, "--region", "us-east-1"]
    cli = [sys.executable, "-m", "clients.s3_encryption.cli", "s3"]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*cli, *args, *common], env=env, capture_output=True, text=True, timeout=120
        )

    kms_args = [
        "--cse-kms",
        kms_key,
        "--kms-endpoint-url",
        kms_server.endpoint,
        "--context",
        "app=cli",
    ]
    put = run(
        "put", bucket, "cli-kms", str(source), *kms_args, "--part-size", "1", "--progress", "always"
    )
    assert put.returncode == 0, put.stderr
    assert "100.0%" in put.stderr and "MiB" in put.stderr
    got = run("get", bucket, "cli-kms", str(tmp_path / "out-kms"), *kms_args, "--progress", "never")
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "out-kms").read_bytes() == source.read_bytes()
    assert s3.head_object(Bucket=bucket, Key="cli-kms")["Metadata"]["x-amz-w"] == "12"

    key_args = ["--cse-key", str(key_file)]
    assert run("put", bucket, "cli-c", str(source), *key_args, "--format", "v2").returncode == 0
    assert run("get", bucket, "cli-c", str(tmp_path / "out-c"), *key_args).returncode == 0
    assert (tmp_path / "out-c").read_bytes() == source.read_bytes()

    wrong = tmp_path / "wrong.key"
    wrong.write_bytes(os.urandom(32))
    failed = run("get", bucket, "cli-c", str(tmp_path / "never"), "--cse-key", str(wrong))
    assert failed.returncode == 1
    assert "WrongKeyError" in failed.stderr
    assert not (tmp_path / "never").exists()
    short = tmp_path / "short.key"
    short.write_bytes(b"too short")
    bad = run("put", bucket, "x", str(source), "--cse-key", str(short))
    assert bad.returncode == 1 and "exactly 32 raw bytes" in bad.stderr
