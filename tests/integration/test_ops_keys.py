"""Key operations through boto3: CreateKey, DescribeKey, ListKeys, UpdateKeyDescription,
EnableKey/DisableKey and AWS's key-state table, against the real server."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.kms_ops import (
    MATERIAL_ID_PATTERN,
    MRK_PATTERN,
    UUID_PATTERN,
    KmsClient,
    account_client,
    account_of,
    create_key,
    expect_error,
    key_arn,
)
from tests.support.server import RunningServer

#: Every KeyMetadata field AWS returns for an enabled single-Region symmetric key
#: (docs/aws-behaviours.md, "Key identifiers and metadata").
DEFAULT_FIELDS = {
    "AWSAccountId",
    "KeyId",
    "Arn",
    "CreationDate",
    "Enabled",
    "Description",
    "KeyUsage",
    "KeyState",
    "Origin",
    "KeyManager",
    "CustomerMasterKeySpec",
    "KeySpec",
    "EncryptionAlgorithms",
    "MultiRegion",
    "CurrentKeyMaterialId",
}


@pytest.fixture()
def fields(kms_server: RunningServer) -> set[str]:
    """The KeyMetadata fields of a default key on the session server's backend: keys in the
    PKCS#11 token say so as AWS keys in a custom key store do (``CustomKeyStoreId``,
    ``CloudHsmClusterId``: docs/custom-key-stores.md)."""
    if kms_server.env.get("MOCK_KMS_BACKEND") == "pkcs11":
        return DEFAULT_FIELDS | {"CustomKeyStoreId", "CloudHsmClusterId"}
    return DEFAULT_FIELDS


# --- CreateKey -----------------------------------------------------------------------------
def test_create_key_default_metadata_is_exactly_awss(kms: KmsClient, fields: set[str]) -> None:
    """A default key has every KeyMetadata field AWS returns, with AWS's values, and nothing
    else."""
    before = time.time()
    metadata = create_key(kms)
    assert set(metadata) == fields
    assert re.match(UUID_PATTERN, metadata["KeyId"])
    assert metadata["Arn"] == key_arn(kms, metadata["KeyId"])
    assert metadata["AWSAccountId"] == account_of(kms)
    assert before - 5 <= metadata["CreationDate"].timestamp() <= time.time() + 5
    assert metadata["Enabled"] is True
    assert metadata["Description"] == ""
    assert metadata["KeyUsage"] == "ENCRYPT_DECRYPT"
    assert metadata["KeyState"] == "Enabled"
    assert metadata["Origin"] == "AWS_KMS"
    assert metadata["KeyManager"] == "CUSTOMER"
    assert metadata["CustomerMasterKeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["KeySpec"] == "SYMMETRIC_DEFAULT"
    assert metadata["EncryptionAlgorithms"] == ["SYMMETRIC_DEFAULT"]
    assert metadata["MultiRegion"] is False
    assert re.match(MATERIAL_ID_PATTERN, metadata["CurrentKeyMaterialId"])


def test_create_key_ids_are_unique(kms: KmsClient) -> None:
    first, second = create_key(kms), create_key(kms)
    assert first["KeyId"] != second["KeyId"]
    assert first["CurrentKeyMaterialId"] != second["CurrentKeyMaterialId"]


def test_create_key_with_description_tags_and_policy(kms: KmsClient) -> None:
    policy = (
        '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"AWS":"'
        + account_of(kms)
        + '"},"Action":"kms:*","Resource":"*"}]}'
    )
    metadata = create_key(
        kms,
        Description="payments key",
        Tags=[{"TagKey": "team", "TagValue": "payments"}, {"TagKey": "env", "TagValue": ""}],
        Policy=policy,
    )
    assert metadata["Description"] == "payments key"
    key_id = metadata["KeyId"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "payments key"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "env", "TagValue": ""},
        {"TagKey": "team", "TagValue": "payments"},
    ]
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == policy


def test_create_key_accepts_explicit_symmetric_defaults(kms: KmsClient) -> None:
    metadata = create_key(
        kms, KeySpec="SYMMETRIC_DEFAULT", KeyUsage="ENCRYPT_DECRYPT", Origin="AWS_KMS"
    )
    assert (metadata["KeySpec"], metadata["KeyUsage"], metadata["Origin"]) == (
        "SYMMETRIC_DEFAULT",
        "ENCRYPT_DECRYPT",
        "AWS_KMS",
    )
    legacy = create_key(kms, CustomerMasterKeySpec="SYMMETRIC_DEFAULT")
    assert legacy["CustomerMasterKeySpec"] == legacy["KeySpec"] == "SYMMETRIC_DEFAULT"


def test_create_multi_region_key(kms: KmsClient, fields: set[str]) -> None:
    """MultiRegion keys have ``mrk-`` ids, a MultiRegionConfiguration, and really work."""
    metadata = create_key(kms, MultiRegion=True)
    key_id = metadata["KeyId"]
    assert re.match(MRK_PATTERN, key_id)
    assert metadata["MultiRegion"] is True
    assert set(metadata) == fields | {"MultiRegionConfiguration"}
    assert metadata["MultiRegionConfiguration"] == {
        "MultiRegionKeyType": "PRIMARY",
        "PrimaryKey": {"Arn": key_arn(kms, key_id), "Region": "us-east-1"},
        "ReplicaKeys": [],
    }
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"] == metadata
    # moto truncates mrk- ids in its blobs; a 40-character id must round-trip here.
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"multi-region")["CiphertextBlob"]
    decrypted = kms.decrypt(CiphertextBlob=blob)
    assert decrypted["Plaintext"] == b"multi-region"
    assert decrypted["KeyId"] == key_arn(kms, key_id)


def test_single_region_key_has_no_multi_region_configuration(kms: KmsClient) -> None:
    metadata = create_key(kms, MultiRegion=False)
    assert "MultiRegionConfiguration" not in metadata
    assert re.match(UUID_PATTERN, metadata["KeyId"])


@pytest.mark.parametrize("key_spec", ["RSA_2048", "ECC_NIST_P256", "HMAC_256"])
def test_create_key_non_symmetric_spec_without_usage(kms: KmsClient, key_spec: str) -> None:
    with expect_error(
        "ValidationException",
        "You must specify a KeyUsage value for all KMS keys except for symmetric encryption keys.",
    ):
        kms.create_key(KeySpec=key_spec)


@pytest.mark.parametrize("key_spec", ["ML_KEM_512", "ML_KEM_768", "ML_KEM_1024"])
def test_create_key_unsupported_spec(kms: KmsClient, key_spec: str) -> None:
    """Valid AWS key specs this mock does not implement: a clear, modeled error."""
    with expect_error(
        "UnsupportedOperationException", f"KeySpec {key_spec} is not supported by mock-kms."
    ):
        kms.create_key(KeySpec=key_spec, KeyUsage="ENCAPSULATE_DECAPSULATE")
    assert kms.list_keys()["Keys"] == []


@pytest.mark.parametrize("key_usage", ["SIGN_VERIFY", "GENERATE_VERIFY_MAC", "KEY_AGREEMENT"])
def test_create_key_usage_mismatch(kms: KmsClient, key_usage: str) -> None:
    with expect_error(
        "ValidationException",
        f"KeyUsage {key_usage} is not compatible with KeySpec SYMMETRIC_DEFAULT",
    ):
        kms.create_key(KeyUsage=key_usage)
    assert kms.list_keys()["Keys"] == []


@pytest.mark.parametrize("origin", ["AWS_CLOUDHSM", "EXTERNAL_KEY_STORE"])
def test_create_key_unsupported_origin(kms: KmsClient, origin: str) -> None:
    with expect_error("UnsupportedOperationException") as info:
        kms.create_key(Origin=origin)
    assert origin in info.value.response["Error"]["Message"]
    assert kms.list_keys()["Keys"] == []


def test_create_key_spec_and_legacy_spec_together(kms: KmsClient) -> None:
    with expect_error("ValidationException") as info:
        kms.create_key(KeySpec="SYMMETRIC_DEFAULT", CustomerMasterKeySpec="SYMMETRIC_DEFAULT")
    assert "CustomerMasterKeySpec" in info.value.response["Error"]["Message"]


def test_create_key_bad_enum_and_lengths(kms: KmsClient) -> None:
    with expect_error("ValidationException") as info:
        kms.create_key(KeySpec="AES_256")
    assert info.value.response["Error"]["Message"].startswith(
        "1 validation error detected: Value 'AES_256' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )
    with expect_error("ValidationException") as info:
        kms.create_key(Description="d" * 8193)
    assert info.value.response["Error"]["Message"].endswith(
        "' at 'description' failed to satisfy constraint: "
        "Member must have length less than or equal to 8192"
    )
    assert create_key(kms, Description="d" * 8192)["Description"] == "d" * 8192


# --- DescribeKey ---------------------------------------------------------------------------
def test_describe_key_by_every_identifier_form(kms: KmsClient) -> None:
    metadata = create_key(kms, Description="four ways")
    key_id = metadata["KeyId"]
    kms.create_alias(AliasName="alias/four-ways", TargetKeyId=key_id)
    forms = [
        key_id,
        key_arn(kms, key_id),
        "alias/four-ways",
        f"arn:aws:kms:us-east-1:{account_of(kms)}:alias/four-ways",
    ]
    for form in forms:
        assert kms.describe_key(KeyId=form)["KeyMetadata"] == metadata, form


@pytest.mark.parametrize(
    "bad_id",
    [
        "fake-key-id",
        "mrk-fake-key-id",
        "1234abcd12ab34cd56ef1234567890ab",
        "1234ABCD-12AB-34CD-56EF-1234567890AB",
    ],
)
def test_describe_key_malformed_id(kms: KmsClient, bad_id: str) -> None:
    with expect_error("NotFoundException", f"Invalid keyId '{bad_id}'"):
        kms.describe_key(KeyId=bad_id)


def test_describe_missing_key_names_the_arn(kms: KmsClient) -> None:
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    message = f"Key '{key_arn(kms, missing)}' does not exist"
    with expect_error("NotFoundException", message):
        kms.describe_key(KeyId=missing)
    with expect_error("NotFoundException", message):
        kms.describe_key(KeyId=key_arn(kms, missing))
    mrk = "mrk-" + "ab" * 16
    with expect_error("NotFoundException", f"Key '{key_arn(kms, mrk)}' does not exist"):
        kms.describe_key(KeyId=mrk)


def test_describe_missing_alias(kms: KmsClient) -> None:
    message = f"Alias arn:aws:kms:us-east-1:{account_of(kms)}:alias/nope is not found."
    with expect_error("NotFoundException", message):
        kms.describe_key(KeyId="alias/nope")
    with expect_error("NotFoundException", message):
        kms.describe_key(KeyId=f"arn:aws:kms:us-east-1:{account_of(kms)}:alias/nope")


def test_describe_key_arn_of_another_region(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    other_region_arn = f"arn:aws:kms:eu-west-1:{account_of(kms)}:key/{key_id}"
    with expect_error("NotFoundException", "Invalid arn eu-west-1"):
        kms.describe_key(KeyId=other_region_arn)
    with expect_error("NotFoundException", "Invalid arn eu-west-1"):
        kms.describe_key(KeyId=f"arn:aws:kms:eu-west-1:{account_of(kms)}:alias/x")


def test_keys_are_per_region(kms_server: RunningServer, kms: KmsClient) -> None:
    """A key created in us-east-1 does not exist in eu-west-1 of the same account."""
    key_id = create_key(kms)["KeyId"]
    europe = account_client(kms_server.endpoint, account_of(kms), region="eu-west-1")
    message = f"Key 'arn:aws:kms:eu-west-1:{account_of(kms)}:key/{key_id}' does not exist"
    with expect_error("NotFoundException", message):
        europe.describe_key(KeyId=key_id)
    assert europe.list_keys()["Keys"] == []
    european = create_key(europe)
    assert european["Arn"].startswith(f"arn:aws:kms:eu-west-1:{account_of(kms)}:key/")
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key_id]


def test_keys_are_per_account(kms_server: RunningServer, kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    other = account_client(kms_server.endpoint)
    message = f"Key '{key_arn(other, key_id)}' does not exist"
    with expect_error("NotFoundException", message):
        other.describe_key(KeyId=key_id)
    with expect_error("NotFoundException", message):
        other.encrypt(KeyId=key_id, Plaintext=b"x")
    assert other.list_keys()["Keys"] == []


def test_describe_aws_managed_key_alias_creates_it(kms: KmsClient, fields: set[str]) -> None:
    """``alias/aws/<service>`` names an AWS managed key, created on first use."""
    metadata = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert metadata["KeyManager"] == "AWS"
    assert metadata["KeyState"] == "Enabled"
    assert metadata["Description"] == (
        "Default key that protects my s3 data when no other key is defined"
    )
    assert set(metadata) == fields
    again = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]
    assert again["KeyId"] == metadata["KeyId"]
    aliases = {a["AliasName"]: a for a in kms.list_aliases()["Aliases"]}
    assert aliases["alias/aws/s3"]["TargetKeyId"] == metadata["KeyId"]
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [metadata["KeyId"]]
    assert kms.get_key_rotation_status(KeyId=metadata["KeyId"])["KeyRotationEnabled"] is True
    blob = kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"s3 data")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["KeyId"] == metadata["Arn"]
    ebs = kms.describe_key(KeyId="alias/aws/ebs")["KeyMetadata"]
    assert ebs["KeyId"] != metadata["KeyId"]


def test_aws_managed_key_cannot_be_changed(kms: KmsClient) -> None:
    key_id = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    calls: list[Callable[[], Any]] = [
        lambda: kms.disable_key(KeyId=key_id),
        lambda: kms.schedule_key_deletion(KeyId=key_id),
        lambda: kms.create_alias(AliasName="alias/mine", TargetKeyId=key_id),
        lambda: kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k", "TagValue": "v"}]),
        lambda: kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy='{"Statement":[]}'),
        lambda: kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90),
    ]
    for call in calls:
        with expect_error("UnsupportedOperationException"):
            call()
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == []
    assert kms.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == 365


# --- ListKeys ------------------------------------------------------------------------------
def test_list_keys_empty_account(kms: KmsClient) -> None:
    response = kms.list_keys()
    assert response["Keys"] == []
    assert response["Truncated"] is False
    assert "NextMarker" not in response


def test_list_keys_paginates_with_boto3_paginator(kms: KmsClient) -> None:
    created = {create_key(kms)["KeyId"] for _ in range(7)}
    pages = list(kms.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 3}))
    assert [len(page["Keys"]) for page in pages] == [3, 3, 1]
    assert [page["Truncated"] for page in pages] == [True, True, False]
    assert all("NextMarker" in page for page in pages[:-1])
    assert "NextMarker" not in pages[-1]
    listed = [entry["KeyId"] for page in pages for entry in page["Keys"]]
    assert sorted(listed) == sorted(created)
    assert len(listed) == len(set(listed))
    for page in pages:
        for entry in page["Keys"]:
            assert entry == {"KeyId": entry["KeyId"], "KeyArn": key_arn(kms, entry["KeyId"])}


def test_list_keys_manual_markers(kms: KmsClient) -> None:
    created = sorted(create_key(kms)["KeyId"] for _ in range(3))
    first = kms.list_keys(Limit=2)
    assert first["Truncated"] is True
    second = kms.list_keys(Limit=2, Marker=first["NextMarker"])
    assert second["Truncated"] is False
    listed = [k["KeyId"] for k in first["Keys"] + second["Keys"]]
    assert sorted(listed) == created
    exact = kms.list_keys(Limit=3)
    assert len(exact["Keys"]) == 3
    assert exact["Truncated"] is False


def test_list_keys_includes_every_state(kms: KmsClient) -> None:
    enabled = create_key(kms)["KeyId"]
    disabled = create_key(kms)["KeyId"]
    pending = create_key(kms)["KeyId"]
    kms.disable_key(KeyId=disabled)
    kms.schedule_key_deletion(KeyId=pending, PendingWindowInDays=7)
    listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
    assert listed == {enabled, disabled, pending}


@pytest.mark.parametrize("marker", ["zzz", "bm90LWEtbWFya2Vy", "\u00e9t\u00e9"])
def test_list_keys_bad_marker(kms: KmsClient, marker: str) -> None:
    with expect_error("InvalidMarkerException"):
        kms.list_keys(Marker=marker)


def test_list_keys_limit_out_of_range(kms: KmsClient) -> None:
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value '1001' at 'limit' failed to satisfy constraint: "
        "Member must have value less than or equal to 1000",
    ):
        kms.list_keys(Limit=1001)


# --- UpdateKeyDescription ------------------------------------------------------------------
def test_update_key_description(kms: KmsClient) -> None:
    key_id = create_key(kms, Description="old")["KeyId"]
    assert kms.update_key_description(KeyId=key_id, Description="new")["ResponseMetadata"]
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "new"
    kms.update_key_description(KeyId=key_arn(kms, key_id), Description="")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""
    kms.disable_key(KeyId=key_id)
    kms.update_key_description(KeyId=key_id, Description="while disabled")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "while disabled"


def test_update_key_description_errors(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/desc", TargetKeyId=key_id)
    with expect_error("NotFoundException", "Invalid keyId 'alias/desc'"):
        kms.update_key_description(KeyId="alias/desc", Description="x")
    with expect_error("ValidationException"):
        kms.update_key_description(KeyId=key_id, Description="d" * 8193)
    kms.schedule_key_deletion(KeyId=key_id)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."):
        kms.update_key_description(KeyId=key_id, Description="too late")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == ""


# --- EnableKey / DisableKey ----------------------------------------------------------------
def test_disable_and_enable_key(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    response = kms.disable_key(KeyId=key_id)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Disabled", False)
    kms.disable_key(KeyId=key_arn(kms, key_id))  # idempotent
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    kms.enable_key(KeyId=key_id)
    metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Enabled", True)
    kms.enable_key(KeyId=key_arn(kms, key_id))  # idempotent
    assert kms.encrypt(KeyId=key_id, Plaintext=b"back")["KeyId"] == key_arn(kms, key_id)


def test_enable_disable_errors(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    for call in (kms.enable_key, kms.disable_key):
        with expect_error("NotFoundException", f"Key '{key_arn(kms, missing)}' does not exist"):
            call(KeyId=missing)
        with expect_error("NotFoundException", "Invalid keyId 'not-a-key'"):
            call(KeyId="not-a-key")
    kms.schedule_key_deletion(KeyId=key_id)
    for call in (kms.enable_key, kms.disable_key):
        with expect_error(
            "KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."
        ):
            call(KeyId=key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "PendingDeletion"


# --- The key-state table (docs/aws-behaviours.md, "Key states") -----------------------------
CryptoCall = Callable[[KmsClient, str, bytes, str, bytes], Any]

#: Each call gets (client, key under test, blob under it, another enabled key, blob under it).
CRYPTO_CALLS: dict[str, CryptoCall] = {
    "Encrypt": lambda c, k, blob, other, other_blob: c.encrypt(KeyId=k, Plaintext=b"p"),
    "Decrypt": lambda c, k, blob, other, other_blob: c.decrypt(CiphertextBlob=blob),
    "DecryptWithKeyId": lambda c, k, blob, other, other_blob: c.decrypt(
        CiphertextBlob=blob, KeyId=k
    ),
    "ReEncryptFrom": lambda c, k, blob, other, other_blob: c.re_encrypt(
        CiphertextBlob=blob, DestinationKeyId=other
    ),
    "ReEncryptTo": lambda c, k, blob, other, other_blob: c.re_encrypt(
        CiphertextBlob=other_blob, DestinationKeyId=k
    ),
    "GenerateDataKey": lambda c, k, blob, other, other_blob: c.generate_data_key(
        KeyId=k, KeySpec="AES_256"
    ),
    "GenerateDataKeyWithoutPlaintext": (
        lambda c, k, blob, other, other_blob: c.generate_data_key_without_plaintext(
            KeyId=k, NumberOfBytes=16
        )
    ),
}


def _put_in_state(kms: KmsClient, key_id: str, state: str) -> None:
    if state == "Disabled":
        kms.disable_key(KeyId=key_id)
    else:
        kms.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == state


@pytest.mark.parametrize("operation", sorted(CRYPTO_CALLS))
@pytest.mark.parametrize(
    ("state", "code", "wording"),
    [
        ("Disabled", "DisabledException", "is disabled."),
        ("PendingDeletion", "KMSInvalidStateException", "is pending deletion."),
    ],
)
def test_crypto_operations_refused_by_key_state(
    kms: KmsClient, operation: str, state: str, code: str, wording: str
) -> None:
    """Disabled → DisabledException, PendingDeletion → KMSInvalidStateException (AWS's
    current behaviour), for every cryptographic operation, naming the key's ARN."""
    key_id = create_key(kms)["KeyId"]
    other = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/state", TargetKeyId=key_id)
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"before")["CiphertextBlob"]
    other_blob = kms.encrypt(KeyId=other, Plaintext=b"other")["CiphertextBlob"]
    _put_in_state(kms, key_id, state)
    message = f"{key_arn(kms, key_id)} {wording}"
    with expect_error(code, message):
        CRYPTO_CALLS[operation](kms, key_id, blob, other, other_blob)
    # The same request through the key's ARN or an alias gets the same answer.
    for form in (key_arn(kms, key_id), "alias/state"):
        with expect_error(code, message):
            CRYPTO_CALLS[operation](kms, form, blob, other, other_blob)


def test_crypto_works_again_after_enable(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    blob = kms.encrypt(KeyId=key_id, Plaintext=b"kept")["CiphertextBlob"]
    kms.disable_key(KeyId=key_id)
    kms.enable_key(KeyId=key_id)
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"kept"


ManagementCall = Callable[[KmsClient, str], Any]

MANAGEMENT_CALLS: dict[str, ManagementCall] = {
    "EnableKey": lambda c, k: c.enable_key(KeyId=k),
    "DisableKey": lambda c, k: c.disable_key(KeyId=k),
    "UpdateKeyDescription": lambda c, k: c.update_key_description(KeyId=k, Description="d"),
    "TagResource": lambda c, k: c.tag_resource(KeyId=k, Tags=[{"TagKey": "t", "TagValue": "v"}]),
    "UntagResource": lambda c, k: c.untag_resource(KeyId=k, TagKeys=["t"]),
    "CreateAlias": lambda c, k: c.create_alias(AliasName="alias/state-table", TargetKeyId=k),
    "EnableKeyRotation": lambda c, k: c.enable_key_rotation(KeyId=k),
    "DisableKeyRotation": lambda c, k: c.disable_key_rotation(KeyId=k),
    "RotateKeyOnDemand": lambda c, k: c.rotate_key_on_demand(KeyId=k),
    "ScheduleKeyDeletion": lambda c, k: c.schedule_key_deletion(KeyId=k),
    "CancelKeyDeletion": lambda c, k: c.cancel_key_deletion(KeyId=k),
    "DescribeKey": lambda c, k: c.describe_key(KeyId=k),
    "GetKeyPolicy": lambda c, k: c.get_key_policy(KeyId=k, PolicyName="default"),
    # A policy that keeps the caller's account in (the lockout safety check).
    "PutKeyPolicy": lambda c, k: c.put_key_policy(
        KeyId=k,
        PolicyName="default",
        Policy=c.get_key_policy(KeyId=k, PolicyName="default")["Policy"],
    ),
    "ListKeyPolicies": lambda c, k: c.list_key_policies(KeyId=k),
    "ListResourceTags": lambda c, k: c.list_resource_tags(KeyId=k),
    "ListAliases": lambda c, k: c.list_aliases(KeyId=k),
    "GetKeyRotationStatus": lambda c, k: c.get_key_rotation_status(KeyId=k),
    "ListKeyRotations": lambda c, k: c.list_key_rotations(KeyId=k),
}

#: AWS's key-state table for the management operations (docs/aws-behaviours.md, "Key states"):
#: which error (None = succeeds) in each state.
STATE_TABLE: dict[str, dict[str, str | None]] = {
    "Enabled": {"CancelKeyDeletion": "KMSInvalidStateException"},
    "Disabled": {
        "CancelKeyDeletion": "KMSInvalidStateException",
        "EnableKeyRotation": "DisabledException",
        "DisableKeyRotation": "DisabledException",
        "RotateKeyOnDemand": "DisabledException",
    },
    "PendingDeletion": {
        name: "KMSInvalidStateException"
        for name in (
            "EnableKey",
            "DisableKey",
            "UpdateKeyDescription",
            "TagResource",
            "UntagResource",
            "CreateAlias",
            "EnableKeyRotation",
            "DisableKeyRotation",
            "RotateKeyOnDemand",
            "ScheduleKeyDeletion",
        )
    },
}

_WORDING = {
    ("Disabled", "DisabledException"): "is disabled.",
    ("PendingDeletion", "KMSInvalidStateException"): "is pending deletion.",
    ("Enabled", "KMSInvalidStateException"): "is not pending deletion.",
    ("Disabled", "KMSInvalidStateException"): "is not pending deletion.",
}


@pytest.mark.parametrize("operation", sorted(MANAGEMENT_CALLS))
@pytest.mark.parametrize("state", ["Enabled", "Disabled", "PendingDeletion"])
def test_management_operations_follow_the_key_state_table(
    kms: KmsClient, operation: str, state: str
) -> None:
    key_id = create_key(kms)["KeyId"]
    if state != "Enabled":
        _put_in_state(kms, key_id, state)
    expected = STATE_TABLE[state].get(operation)
    if expected is None:
        MANAGEMENT_CALLS[operation](kms, key_id)
        return
    with expect_error(expected, f"{key_arn(kms, key_id)} {_WORDING[(state, expected)]}"):
        MANAGEMENT_CALLS[operation](kms, key_id)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == state


def test_generate_random_needs_no_key(kms: KmsClient) -> None:
    key_id = create_key(kms)["KeyId"]
    kms.disable_key(KeyId=key_id)
    assert len(kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8


# --- Other accounts' keys ------------------------------------------------------------------
def test_other_accounts_key_by_arn_cannot_be_managed(
    kms_server: RunningServer, kms: KmsClient
) -> None:
    """Management operations do not work across accounts on AWS, whatever the key policy:
    another account naming this key by its ARN changes nothing."""
    victim = create_key(kms, Description="victim")
    intruder = account_client(kms_server.endpoint)
    arn = victim["Arn"]
    calls: list[Callable[[], Any]] = [
        lambda: intruder.disable_key(KeyId=arn),
        lambda: intruder.enable_key(KeyId=arn),
        lambda: intruder.schedule_key_deletion(KeyId=arn, PendingWindowInDays=7),
        lambda: intruder.cancel_key_deletion(KeyId=arn),
        lambda: intruder.update_key_description(KeyId=arn, Description="pwned"),
        lambda: intruder.tag_resource(KeyId=arn, Tags=[{"TagKey": "x", "TagValue": "y"}]),
        lambda: intruder.untag_resource(KeyId=arn, TagKeys=["x"]),
        lambda: intruder.list_resource_tags(KeyId=arn),
        lambda: intruder.put_key_policy(KeyId=arn, PolicyName="default", Policy='{"Statement":[]}'),
        lambda: intruder.get_key_policy(KeyId=arn, PolicyName="default"),
        lambda: intruder.list_key_policies(KeyId=arn),
        lambda: intruder.enable_key_rotation(KeyId=arn),
        lambda: intruder.disable_key_rotation(KeyId=arn),
        lambda: intruder.get_key_rotation_status(KeyId=arn),
        lambda: intruder.rotate_key_on_demand(KeyId=arn),
        lambda: intruder.list_key_rotations(KeyId=arn),
        lambda: intruder.create_alias(AliasName="alias/stolen", TargetKeyId=arn),
        lambda: intruder.list_aliases(KeyId=arn),
    ]
    for call in calls:
        with expect_error("AccessDeniedException") as info:
            call()
        message = info.value.response["Error"]["Message"]
        assert f"arn:aws:iam::{account_of(intruder)}:" in message
        assert arn in message
    after = kms.describe_key(KeyId=victim["KeyId"])["KeyMetadata"]
    assert after == victim
    assert kms.list_resource_tags(KeyId=victim["KeyId"])["Tags"] == []
    assert kms.list_key_rotations(KeyId=victim["KeyId"])["Rotations"] == []
    assert intruder.list_aliases()["Aliases"] == []


def test_other_accounts_key_by_arn_for_cross_account_operations(
    kms_server: RunningServer, kms: KmsClient
) -> None:
    """DescribeKey and the cryptographic operations accept another account's key ARN, as AWS
    does when the key policy allows it; without that, AccessDeniedException."""
    partner = account_client(kms_server.endpoint)
    refused = create_key(kms)
    with expect_error(
        "AccessDeniedException",
        f"User: arn:aws:iam::{account_of(partner)}:root is not authorized to perform: "
        f"kms:DescribeKey on resource: {refused['Arn']} because no resource-based policy "
        "allows the kms:DescribeKey action",
    ):
        partner.describe_key(KeyId=refused["Arn"])
    policy = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"AWS": [account_of(kms), account_of(partner)]},
                "Action": "kms:*",
                "Resource": "*",
            }
        ],
    }
    shared = create_key(kms, Policy=json.dumps(policy))
    assert partner.describe_key(KeyId=shared["Arn"])["KeyMetadata"] == shared
    blob = partner.encrypt(KeyId=shared["Arn"], Plaintext=b"shared")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"shared"
    decrypted = partner.decrypt(CiphertextBlob=blob, KeyId=shared["Arn"])
    assert (decrypted["Plaintext"], decrypted["KeyId"]) == (b"shared", shared["Arn"])
