"""Cryptographic operations through boto3: Encrypt, Decrypt, ReEncrypt, GenerateDataKey,
GenerateDataKeyWithoutPlaintext, GenerateRandom; encryption context, IncorrectKey, DryRun,
and every way a ciphertext blob can be wrong."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.kms_ops import (
    MATERIAL_ID_PATTERN,
    NO_MESSAGE,
    KmsClient,
    account_client,
    account_of,
    alias_arn,
    create_key,
    expect_error,
    key_arn,
)
from tests.support.server import RunningServer

DRY_RUN = "The request would have succeeded, but the DryRun option is set."
INCORRECT_KEY = "The key ID in the request does not identify a CMK that can perform this operation."


# --- Encrypt / Decrypt ---------------------------------------------------------------------
def test_encrypt_decrypt_round_trip(kms: KmsClient, key: dict[str, str]) -> None:
    encrypted = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"hello, kms")
    assert set(encrypted) - {"ResponseMetadata"} == {
        "CiphertextBlob",
        "KeyId",
        "EncryptionAlgorithm",
    }
    assert encrypted["KeyId"] == key["Arn"]
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    blob = encrypted["CiphertextBlob"]
    assert isinstance(blob, bytes)
    assert b"hello, kms" not in blob
    decrypted = kms.decrypt(CiphertextBlob=blob)
    assert set(decrypted) - {"ResponseMetadata"} == {
        "KeyId",
        "Plaintext",
        "EncryptionAlgorithm",
        "KeyMaterialId",
    }
    assert decrypted["Plaintext"] == b"hello, kms"
    assert decrypted["KeyId"] == key["Arn"]
    assert decrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert decrypted["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert re.match(MATERIAL_ID_PATTERN, decrypted["KeyMaterialId"])


def test_encrypt_and_decrypt_accept_every_identifier_form(
    kms: KmsClient, key: dict[str, str]
) -> None:
    """Response ``KeyId`` is always the key ARN, whatever form the caller used."""
    kms.create_alias(AliasName="alias/crypto-forms", TargetKeyId=key["KeyId"])
    forms = [
        key["KeyId"],
        key["Arn"],
        "alias/crypto-forms",
        alias_arn(kms, "alias/crypto-forms"),
    ]
    for form in forms:
        encrypted = kms.encrypt(KeyId=form, Plaintext=b"x", EncryptionAlgorithm="SYMMETRIC_DEFAULT")
        assert encrypted["KeyId"] == key["Arn"], form
        decrypted = kms.decrypt(CiphertextBlob=encrypted["CiphertextBlob"], KeyId=form)
        assert decrypted["KeyId"] == key["Arn"], form
        assert decrypted["Plaintext"] == b"x"


def test_encryptions_of_the_same_plaintext_differ(kms: KmsClient, key: dict[str, str]) -> None:
    blobs = {kms.encrypt(KeyId=key["KeyId"], Plaintext=b"same")["CiphertextBlob"] for _ in range(3)}
    assert len(blobs) == 3


def test_plaintext_size_limits(kms: KmsClient, key: dict[str, str]) -> None:
    big = os.urandom(4096)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=big)["CiphertextBlob"]
    assert len(blob) <= 6144
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == big
    one = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"\x00")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=one)["Plaintext"] == b"\x00"
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value at 'plaintext' failed to satisfy constraint: "
        "Member must have length less than or equal to 4096",
    ):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=os.urandom(4097))


def test_encrypt_missing_key(kms: KmsClient) -> None:
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    with expect_error("NotFoundException", f"Key '{key_arn(kms, missing)}' does not exist"):
        kms.encrypt(KeyId=missing, Plaintext=b"x")
    with expect_error(
        "NotFoundException", f"Alias {alias_arn(kms, 'alias/missing')} is not found."
    ):
        kms.encrypt(KeyId="alias/missing", Plaintext=b"x")
    with expect_error("NotFoundException", "Invalid keyId 'nope'"):
        kms.encrypt(KeyId="nope", Plaintext=b"x")


@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "SM2PKE"])
def test_asymmetric_algorithm_on_symmetric_key(
    kms: KmsClient, key: dict[str, str], algorithm: str
) -> None:
    with expect_error(
        "InvalidKeyUsageException",
        f"Algorithm {algorithm} is incompatible with key spec SYMMETRIC_DEFAULT.",
    ):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm=algorithm)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x")["CiphertextBlob"]
    with expect_error("InvalidKeyUsageException"):
        kms.decrypt(CiphertextBlob=blob, EncryptionAlgorithm=algorithm)


def test_unknown_algorithm(kms: KmsClient, key: dict[str, str]) -> None:
    with expect_error("ValidationException") as info:
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"x", EncryptionAlgorithm="AES_GCM")
    assert (
        "at 'encryptionAlgorithm' failed to satisfy constraint"
        in (info.value.response["Error"]["Message"])
    )


# --- Encryption context --------------------------------------------------------------------
def test_context_must_match_exactly(kms: KmsClient, key: dict[str, str]) -> None:
    context = {"purpose": "test", "Tenant": "Ünïcødé ☃"}
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"bound", EncryptionContext=context)[
        "CiphertextBlob"
    ]
    reordered = dict(reversed(list(context.items())))
    for same in (context, reordered):
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=same)["Plaintext"] == b"bound"
    wrong = [
        None,
        {},
        {"purpose": "test"},
        {**context, "extra": "pair"},
        {**context, "purpose": "other"},
        {"Purpose": "test", "Tenant": "Ünïcødé ☃"},
        {"purpose": "TEST", "Tenant": "Ünïcødé ☃"},
        {"purpose": "test", "Tenant": "Ünïcødé ☃ "},
    ]
    for other in wrong:
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            if other is None:
                kms.decrypt(CiphertextBlob=blob)
            else:
                kms.decrypt(CiphertextBlob=blob, EncryptionContext=other)


def test_context_pairs_are_not_concatenated(kms: KmsClient, key: dict[str, str]) -> None:
    """``{"ab": "c"}`` and ``{"a": "bc"}`` are different contexts (moto/LocalStack collide)."""
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"ab": "c"})[
        "CiphertextBlob"
    ]
    for collision in ({"a": "bc"}, {"abc": ""}, {"a": "b", "": "c"}):
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=blob, EncryptionContext=collision)
    two = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"a": "b", "c": "d"})[
        "CiphertextBlob"
    ]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=two, EncryptionContext={"a": "bc", "": "d"})
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=two, EncryptionContext={"a": "d", "c": "b"})


def test_no_context_and_empty_context_are_the_same(kms: KmsClient, key: dict[str, str]) -> None:
    with_empty = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"e", EncryptionContext={})
    assert kms.decrypt(CiphertextBlob=with_empty["CiphertextBlob"])["Plaintext"] == b"e"
    without = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"n")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=without, EncryptionContext={})["Plaintext"] == b"n"
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=without, EncryptionContext={"k": "v"})


# --- IncorrectKeyException -----------------------------------------------------------------
def test_decrypt_with_another_keys_id(kms: KmsClient, key: dict[str, str]) -> None:
    other = create_key(kms)
    kms.create_alias(AliasName="alias/other", TargetKeyId=other["KeyId"])
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    for form in (other["KeyId"], other["Arn"], "alias/other", alias_arn(kms, "alias/other")):
        with expect_error("IncorrectKeyException", INCORRECT_KEY):
            kms.decrypt(CiphertextBlob=blob, KeyId=form)
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    with expect_error("NotFoundException", f"Key '{key_arn(kms, missing)}' does not exist"):
        kms.decrypt(CiphertextBlob=blob, KeyId=missing)


# --- Bad ciphertext blobs ------------------------------------------------------------------
def test_tampered_blobs_are_invalid_ciphertext(kms: KmsClient, key: dict[str, str]) -> None:
    """Flipping a bit anywhere (header, key id, material id, nonce, body, tag) fails."""
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"tamper me please")["CiphertextBlob"]
    for index in (0, 1, 2, 3, 20, 40, 60, 70, 80, len(blob) // 2, len(blob) - 17, len(blob) - 1):
        tampered = bytearray(blob)
        tampered[index] ^= 0x01
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=bytes(tampered))
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"tamper me please"


def test_truncated_extended_and_garbage_blobs(kms: KmsClient, key: dict[str, str]) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"0123456789")["CiphertextBlob"]
    bad = [
        blob[:-1],
        blob[: len(blob) // 2],
        blob[:3],
        blob[:1],
        blob + b"\x00",
        b"\x00" + blob,
        os.urandom(len(blob)),
        os.urandom(6144),
        b"x",
        b"\x01" * 200,
    ]
    for candidate in bad:
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=candidate)


def _with_key_id(blob: bytes, key_id: str) -> bytes:
    """``blob`` with the key id in its header replaced (format version 1, docs/formats.md)."""
    length = blob[2]
    new_id = key_id.encode()
    return blob[:2] + bytes([len(new_id)]) + new_id + blob[3 + length :]


def test_blob_naming_another_key_is_invalid_ciphertext(
    kms_server: RunningServer, kms: KmsClient, key: dict[str, str]
) -> None:
    """A blob whose header names some other key (another of the caller's keys, a key ARN of
    another account or region, an alias) is just a bad blob: no other error leaks out."""
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    assert _with_key_id(blob, key["KeyId"]) == blob
    other_account = create_key(account_client(kms_server.endpoint))
    forged_ids = [
        create_key(kms)["KeyId"],
        other_account["Arn"],
        other_account["KeyId"],
        key["Arn"],
        key["Arn"].replace("us-east-1", "eu-west-1"),
        "alias/aws/s3",
        alias_arn(kms, "alias/aws/s3"),
        "mrk-" + "0" * 32,
    ]
    for forged in forged_ids:
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=_with_key_id(blob, forged))
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]].count(key["KeyId"]) == 1
    assert kms.list_aliases()["Aliases"] == []  # no AWS managed key was created on the way


def test_blob_too_large_is_a_validation_error(kms: KmsClient) -> None:
    with expect_error("ValidationException") as info:
        kms.decrypt(CiphertextBlob=os.urandom(6145))
    assert "'ciphertextBlob'" in info.value.response["Error"]["Message"]


def test_blob_from_another_account_fails(
    kms_server: RunningServer, kms: KmsClient, key: dict[str, str]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"mine")["CiphertextBlob"]
    other = account_client(kms_server.endpoint)
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        other.decrypt(CiphertextBlob=blob)
    other_key = create_key(other)["KeyId"]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        other.re_encrypt(CiphertextBlob=blob, DestinationKeyId=other_key)


def test_blob_from_another_region_fails(
    kms_server: RunningServer, kms: KmsClient, key: dict[str, str]
) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"here")["CiphertextBlob"]
    europe = account_client(kms_server.endpoint, account_of(kms), region="eu-west-1")
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        europe.decrypt(CiphertextBlob=blob)
    with expect_error("NotFoundException", "Invalid arn us-east-1"):
        europe.decrypt(CiphertextBlob=blob, KeyId=key["Arn"])


# --- ReEncrypt -----------------------------------------------------------------------------
def test_re_encrypt_to_another_key_and_context(kms: KmsClient, key: dict[str, str]) -> None:
    destination = create_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"move me", EncryptionContext={"a": "1"})[
        "CiphertextBlob"
    ]
    response = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceEncryptionContext={"a": "1"},
        DestinationKeyId=destination["KeyId"],
        DestinationEncryptionContext={"b": "2"},
    )
    assert set(response) - {"ResponseMetadata"} == {
        "CiphertextBlob",
        "SourceKeyId",
        "KeyId",
        "SourceEncryptionAlgorithm",
        "DestinationEncryptionAlgorithm",
        "SourceKeyMaterialId",
        "DestinationKeyMaterialId",
    }
    assert response["SourceKeyId"] == key["Arn"]
    assert response["KeyId"] == destination["Arn"]
    assert response["SourceEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert response["DestinationEncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert response["SourceKeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert response["DestinationKeyMaterialId"] == destination["CurrentKeyMaterialId"]
    new_blob = response["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=new_blob, EncryptionContext={"b": "2"})
    assert decrypted["Plaintext"] == b"move me"
    assert decrypted["KeyId"] == destination["Arn"]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=new_blob, EncryptionContext={"a": "1"})


def test_re_encrypt_same_key_new_context(kms: KmsClient, key: dict[str, str]) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p")["CiphertextBlob"]
    kms.create_alias(AliasName="alias/re", TargetKeyId=key["KeyId"])
    response = kms.re_encrypt(
        CiphertextBlob=blob,
        SourceKeyId="alias/re",
        DestinationKeyId="alias/re",
        DestinationEncryptionContext={"new": "context"},
    )
    assert response["SourceKeyId"] == response["KeyId"] == key["Arn"]
    plain = kms.decrypt(
        CiphertextBlob=response["CiphertextBlob"], EncryptionContext={"new": "context"}
    )
    assert plain["Plaintext"] == b"p"


def test_re_encrypt_errors(kms: KmsClient, key: dict[str, str]) -> None:
    other = create_key(kms)
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"k": "v"})[
        "CiphertextBlob"
    ]
    with expect_error("IncorrectKeyException", INCORRECT_KEY):
        kms.re_encrypt(
            CiphertextBlob=blob,
            SourceKeyId=other["KeyId"],
            SourceEncryptionContext={"k": "v"},
            DestinationKeyId=other["KeyId"],
        )
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=other["KeyId"])
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.re_encrypt(
            CiphertextBlob=blob[:-2] + b"zz",
            SourceEncryptionContext={"k": "v"},
            DestinationKeyId=other["KeyId"],
        )
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    with expect_error("NotFoundException", f"Key '{key_arn(kms, missing)}' does not exist"):
        kms.re_encrypt(
            CiphertextBlob=blob, SourceEncryptionContext={"k": "v"}, DestinationKeyId=missing
        )


# --- GenerateDataKey / GenerateDataKeyWithoutPlaintext -------------------------------------
@pytest.mark.parametrize(
    ("arguments", "size"),
    [
        ({"KeySpec": "AES_256"}, 32),
        ({"KeySpec": "AES_128"}, 16),
        ({"NumberOfBytes": 1}, 1),
        ({"NumberOfBytes": 64}, 64),
        ({"NumberOfBytes": 1024}, 1024),
    ],
)
def test_generate_data_key(
    kms: KmsClient, key: dict[str, str], arguments: dict[str, object], size: int
) -> None:
    response = kms.generate_data_key(
        KeyId=key["KeyId"], EncryptionContext={"bucket": "b1"}, **arguments
    )
    assert set(response) - {"ResponseMetadata"} == {
        "CiphertextBlob",
        "Plaintext",
        "KeyId",
        "KeyMaterialId",
    }
    assert response["KeyId"] == key["Arn"]
    assert response["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    assert len(response["Plaintext"]) == size
    decrypted = kms.decrypt(
        CiphertextBlob=response["CiphertextBlob"], EncryptionContext={"bucket": "b1"}
    )
    assert decrypted["Plaintext"] == response["Plaintext"]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=response["CiphertextBlob"])


def test_generate_data_key_without_plaintext(kms: KmsClient, key: dict[str, str]) -> None:
    kms.create_alias(AliasName="alias/gdk", TargetKeyId=key["KeyId"])
    response = kms.generate_data_key_without_plaintext(
        KeyId="alias/gdk", KeySpec="AES_256", EncryptionContext={"x": "y"}
    )
    assert set(response) - {"ResponseMetadata"} == {"CiphertextBlob", "KeyId", "KeyMaterialId"}
    assert response["KeyId"] == key["Arn"]
    assert response["KeyMaterialId"] == key["CurrentKeyMaterialId"]
    decrypted = kms.decrypt(CiphertextBlob=response["CiphertextBlob"], EncryptionContext={"x": "y"})
    assert len(decrypted["Plaintext"]) == 32
    sized = kms.generate_data_key_without_plaintext(KeyId=key["Arn"], NumberOfBytes=7)
    assert len(kms.decrypt(CiphertextBlob=sized["CiphertextBlob"])["Plaintext"]) == 7


def test_data_keys_are_random(kms: KmsClient, key: dict[str, str]) -> None:
    keys = {
        kms.generate_data_key(KeyId=key["KeyId"], KeySpec="AES_256")["Plaintext"] for _ in range(3)
    }
    assert len(keys) == 3


@pytest.mark.parametrize("operation", ["generate_data_key", "generate_data_key_without_plaintext"])
def test_generate_data_key_spec_xor_size(
    kms: KmsClient, key: dict[str, str], operation: str
) -> None:
    call = getattr(kms, operation)
    message = "Please specify either number of bytes or key spec."
    with expect_error("ValidationException", message):
        call(KeyId=key["KeyId"])
    with expect_error("ValidationException", message):
        call(KeyId=key["KeyId"], KeySpec="AES_256", NumberOfBytes=32)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024",
    ):
        call(KeyId=key["KeyId"], NumberOfBytes=1025)
    with expect_error("ValidationException") as info:
        call(KeyId=key["KeyId"], KeySpec="AES_512")
    assert "at 'keySpec' failed to satisfy constraint" in info.value.response["Error"]["Message"]


# --- GenerateRandom ------------------------------------------------------------------------
def test_generate_random(kms: KmsClient) -> None:
    for size in (1, 32, 1024):
        response = kms.generate_random(NumberOfBytes=size)
        assert set(response) - {"ResponseMetadata"} == {"Plaintext"}
        assert len(response["Plaintext"]) == size
    assert len({kms.generate_random(NumberOfBytes=16)["Plaintext"] for _ in range(3)}) == 3


def test_generate_random_bad_sizes(kms: KmsClient) -> None:
    with expect_error("ValidationException", "NumberOfBytes is required."):
        kms.generate_random()
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value '1025' at 'numberOfBytes' failed to satisfy "
        "constraint: Member must have value less than or equal to 1024",
    ):
        kms.generate_random(NumberOfBytes=1025)


# --- DryRun --------------------------------------------------------------------------------
def test_dry_run_on_every_crypto_operation(kms: KmsClient, key: dict[str, str]) -> None:
    key_id = key["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"p")["CiphertextBlob"]
    calls: list[Callable[[], Any]] = [
        lambda: kms.encrypt(KeyId=key_id, Plaintext=b"p", DryRun=True),
        lambda: kms.decrypt(CiphertextBlob=blob, DryRun=True),
        lambda: kms.decrypt(KeyId=key_id, DryRun=True, DryRunModifiers=["IGNORE_CIPHERTEXT"]),
        lambda: kms.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key_id, DryRun=True),
        lambda: kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", DryRun=True),
        lambda: kms.generate_data_key_without_plaintext(KeyId=key_id, NumberOfBytes=8, DryRun=True),
    ]
    for call in calls:
        with expect_error("DryRunOperationException", DRY_RUN):
            call()


def test_dry_run_still_checks_the_request(kms: KmsClient, key: dict[str, str]) -> None:
    """DryRun answers 'would have succeeded' only when the request really would have."""
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", EncryptionContext={"a": "b"})[
        "CiphertextBlob"
    ]
    with expect_error("InvalidCiphertextException", NO_MESSAGE):
        kms.decrypt(CiphertextBlob=blob, DryRun=True)
    kms.disable_key(KeyId=key["KeyId"])
    with expect_error("DisabledException", f"{key['Arn']} is disabled."):
        kms.encrypt(KeyId=key["KeyId"], Plaintext=b"p", DryRun=True)
    with expect_error("DisabledException", f"{key['Arn']} is disabled."):
        kms.generate_data_key(KeyId=key["KeyId"], NumberOfBytes=8, DryRun=True)
