"""Aliases through boto3: CreateAlias, UpdateAlias, DeleteAlias, ListAliases and AWS's rules."""

from __future__ import annotations

import time

import pytest

from tests.support.kms_ops import (
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

PREFIX_MESSAGE = (
    'Alias must start with the prefix "alias/". Please see '
    "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
)
MISSING_KEY = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"


def _aliases(kms: KmsClient, **kwargs: str) -> dict[str, dict[str, object]]:
    return {a["AliasName"]: a for a in kms.list_aliases(**kwargs)["Aliases"]}


# --- CreateAlias ---------------------------------------------------------------------------
def test_create_alias_and_list_entry(kms: KmsClient, key_id: str) -> None:
    before = time.time()
    response = kms.create_alias(AliasName="alias/my-app_key/v1", TargetKeyId=key_id)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    entry = _aliases(kms)["alias/my-app_key/v1"]
    assert set(entry) == {
        "AliasName",
        "AliasArn",
        "TargetKeyId",
        "CreationDate",
        "LastUpdatedDate",
    }
    assert entry["AliasArn"] == alias_arn(kms, "alias/my-app_key/v1")
    assert entry["TargetKeyId"] == key_id  # the bare id, not the ARN
    created = entry["CreationDate"].timestamp()  # type: ignore[attr-defined]
    assert before - 5 <= created <= time.time() + 5
    assert entry["LastUpdatedDate"] == entry["CreationDate"]
    assert kms.describe_key(KeyId="alias/my-app_key/v1")["KeyMetadata"]["KeyId"] == key_id


def test_create_alias_by_key_arn(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/by-arn", TargetKeyId=key_arn(kms, key_id))
    assert _aliases(kms)["alias/by-arn"]["TargetKeyId"] == key_id


def test_create_alias_prefix_rule(kms: KmsClient, key_id: str) -> None:
    for name in ("my-alias", "aliasx/foo", "Alias/foo", alias_arn(kms, "alias/arn-form")):
        with expect_error("ValidationException", PREFIX_MESSAGE):
            kms.create_alias(AliasName=name, TargetKeyId=key_id)
    assert kms.list_aliases()["Aliases"] == []


@pytest.mark.parametrize("name", ["alias/aws/mine", "alias/aws/s3"])
def test_create_alias_reserved_aws_prefix(kms: KmsClient, key_id: str, name: str) -> None:
    """``alias/aws/`` belongs to AWS managed keys (moto's NotAuthorizedException, no message)."""
    with expect_error("NotAuthorizedException", NO_MESSAGE):
        kms.create_alias(AliasName=name, TargetKeyId=key_id)
    assert kms.list_aliases()["Aliases"] == []


def test_create_alias_invalid_characters(kms: KmsClient, key_id: str) -> None:
    for name in ("alias/has space", "alias/star*", "alias/ünï", "alias/dot.ted"):
        with expect_error("ValidationException") as info:
            kms.create_alias(AliasName=name, TargetKeyId=key_id)
        assert info.value.response["Error"]["Message"] == (
            f"1 validation error detected: Value '{name}' at 'aliasName' failed to satisfy "
            "constraint: Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$"
        )
    # ':' passes the model pattern but not AWS's documented alias rules.
    with expect_error(
        "InvalidAliasNameException", "alias/a:b contains invalid characters for an alias"
    ):
        kms.create_alias(AliasName="alias/a:b", TargetKeyId=key_id)
    with expect_error("ValidationException") as info:
        kms.create_alias(AliasName="alias/" + "a" * 251, TargetKeyId=key_id)
    assert (
        "Member must have length less than or equal to 256"
        in (info.value.response["Error"]["Message"])
    )
    kms.create_alias(AliasName="alias/" + "a" * 250, TargetKeyId=key_id)
    assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]] == ["alias/" + "a" * 250]


def test_create_alias_duplicate(kms: KmsClient, key_id: str) -> None:
    other = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/dup", TargetKeyId=key_id)
    message = f"An alias with the name {alias_arn(kms, 'alias/dup')} already exists"
    for target in (key_id, other):
        with expect_error("AlreadyExistsException", message):
            kms.create_alias(AliasName="alias/dup", TargetKeyId=target)
    assert _aliases(kms)["alias/dup"]["TargetKeyId"] == key_id


def test_alias_names_are_case_sensitive(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/Case", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/case", TargetKeyId=key_id)
    assert set(_aliases(kms)) == {"alias/Case", "alias/case"}


def test_create_alias_target_errors(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/first", TargetKeyId=key_id)
    with expect_error("NotFoundException", "Invalid keyId 'alias/first'"):
        kms.create_alias(AliasName="alias/second", TargetKeyId="alias/first")
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.create_alias(AliasName="alias/second", TargetKeyId=MISSING_KEY)
    with expect_error("NotFoundException", "Invalid keyId 'garbage'"):
        kms.create_alias(AliasName="alias/second", TargetKeyId="garbage")
    assert set(_aliases(kms)) == {"alias/first"}


def test_create_alias_for_disabled_and_pending_deletion_keys(kms: KmsClient, key_id: str) -> None:
    kms.disable_key(KeyId=key_id)
    kms.create_alias(AliasName="alias/disabled", TargetKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."):
        kms.create_alias(AliasName="alias/pending", TargetKeyId=key_id)
    assert set(_aliases(kms)) == {"alias/disabled"}


def test_same_alias_name_in_two_accounts_and_regions(
    kms_server: RunningServer, kms: KmsClient, key_id: str
) -> None:
    kms.create_alias(AliasName="alias/shared-name", TargetKeyId=key_id)
    other = account_client(kms_server.endpoint)
    other_key = create_key(other)["KeyId"]
    other.create_alias(AliasName="alias/shared-name", TargetKeyId=other_key)
    assert other.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == other_key
    assert kms.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == key_id
    europe = account_client(kms_server.endpoint, account_of(kms), "eu-west-1")
    assert europe.list_aliases()["Aliases"] == []
    with expect_error(
        "NotFoundException", f"Alias {alias_arn(europe, 'alias/shared-name')} is not found."
    ):
        europe.describe_key(KeyId="alias/shared-name")


def test_alias_cannot_target_another_accounts_key(
    kms_server: RunningServer, kms: KmsClient
) -> None:
    other = account_client(kms_server.endpoint)
    foreign = create_key(other)
    with expect_error(
        "NotFoundException", f"Key '{key_arn(kms, foreign['KeyId'])}' does not exist"
    ):
        kms.create_alias(AliasName="alias/foreign", TargetKeyId=foreign["KeyId"])


# --- UpdateAlias ---------------------------------------------------------------------------
def test_update_alias_retargets(kms: KmsClient, key_id: str) -> None:
    second = create_key(kms)
    kms.create_alias(AliasName="alias/moving", TargetKeyId=key_id)
    created = _aliases(kms)["alias/moving"]
    time.sleep(0.01)
    response = kms.update_alias(AliasName="alias/moving", TargetKeyId=second["Arn"])
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    updated = _aliases(kms)["alias/moving"]
    assert updated["TargetKeyId"] == second["KeyId"]
    assert updated["CreationDate"] == created["CreationDate"]
    assert updated["LastUpdatedDate"] > created["LastUpdatedDate"]  # type: ignore[operator]
    encrypted = kms.encrypt(KeyId="alias/moving", Plaintext=b"p")
    assert encrypted["KeyId"] == second["Arn"]


def test_update_alias_errors(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/upd", TargetKeyId=key_id)
    with expect_error("NotFoundException", f"Alias {alias_arn(kms, 'alias/none')} is not found."):
        kms.update_alias(AliasName="alias/none", TargetKeyId=key_id)
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.update_alias(AliasName="alias/upd", TargetKeyId=MISSING_KEY)
    with expect_error("NotFoundException", "Invalid keyId 'alias/upd'"):
        kms.update_alias(AliasName="alias/upd", TargetKeyId="alias/upd")
    with expect_error("NotAuthorizedException", NO_MESSAGE):
        kms.update_alias(AliasName="alias/aws/s3", TargetKeyId=key_id)
    assert _aliases(kms)["alias/upd"]["TargetKeyId"] == key_id


def test_update_alias_pending_deletion_rules(kms: KmsClient, key_id: str) -> None:
    """The current target may be pending deletion; the new target may not."""
    second = create_key(kms)["KeyId"]
    third = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/pd", TargetKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id)
    kms.update_alias(AliasName="alias/pd", TargetKeyId=second)
    assert _aliases(kms)["alias/pd"]["TargetKeyId"] == second
    kms.schedule_key_deletion(KeyId=third)
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, third)} is pending deletion."):
        kms.update_alias(AliasName="alias/pd", TargetKeyId=third)
    assert _aliases(kms)["alias/pd"]["TargetKeyId"] == second


# --- DeleteAlias ---------------------------------------------------------------------------
def test_delete_alias(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/gone", TargetKeyId=key_id)
    response = kms.delete_alias(AliasName="alias/gone")
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    assert kms.list_aliases()["Aliases"] == []
    message = f"Alias {alias_arn(kms, 'alias/gone')} is not found."
    with expect_error("NotFoundException", message):
        kms.delete_alias(AliasName="alias/gone")
    with expect_error("NotFoundException", message):
        kms.describe_key(KeyId="alias/gone")
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    kms.create_alias(AliasName="alias/gone", TargetKeyId=key_id)  # the name is free again


def test_delete_alias_of_key_pending_deletion(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/pd-delete", TargetKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id)
    kms.delete_alias(AliasName="alias/pd-delete")
    assert kms.list_aliases()["Aliases"] == []


def test_delete_reserved_alias(kms: KmsClient) -> None:
    kms.describe_key(KeyId="alias/aws/s3")
    with expect_error("NotAuthorizedException", NO_MESSAGE):
        kms.delete_alias(AliasName="alias/aws/s3")
    assert "alias/aws/s3" in _aliases(kms)


# --- ListAliases ---------------------------------------------------------------------------
def test_list_aliases_filter_by_key(kms: KmsClient, key_id: str) -> None:
    other = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/a1", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/a2", TargetKeyId=key_id)
    kms.create_alias(AliasName="alias/b1", TargetKeyId=other)
    for form in (key_id, key_arn(kms, key_id)):
        response = kms.list_aliases(KeyId=form)
        assert [a["AliasName"] for a in response["Aliases"]] == ["alias/a1", "alias/a2"]
        assert response["Truncated"] is False
    assert [a["AliasName"] for a in kms.list_aliases(KeyId=other)["Aliases"]] == ["alias/b1"]
    lonely = create_key(kms)["KeyId"]
    assert kms.list_aliases(KeyId=lonely)["Aliases"] == []
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.list_aliases(KeyId=MISSING_KEY)


def test_list_aliases_paginates(kms: KmsClient, key_id: str) -> None:
    names = [f"alias/page-{index}" for index in range(5)]
    for name in names:
        kms.create_alias(AliasName=name, TargetKeyId=key_id)
    pages = list(kms.get_paginator("list_aliases").paginate(PaginationConfig={"PageSize": 2}))
    assert [len(page["Aliases"]) for page in pages] == [2, 2, 1]
    assert [page["Truncated"] for page in pages] == [True, True, False]
    assert [a["AliasName"] for page in pages for a in page["Aliases"]] == names
    filtered = list(
        kms.get_paginator("list_aliases").paginate(KeyId=key_id, PaginationConfig={"PageSize": 4})
    )
    assert [len(page["Aliases"]) for page in filtered] == [4, 1]
    with expect_error("InvalidMarkerException"):
        kms.list_aliases(Marker="not-a-marker")


def test_alias_of_key_pending_deletion(kms: KmsClient, key_id: str) -> None:
    """The alias stays listed and resolvable; the key's state decides what works."""
    kms.create_alias(AliasName="alias/doomed", TargetKeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id)
    assert _aliases(kms)["alias/doomed"]["TargetKeyId"] == key_id
    metadata = kms.describe_key(KeyId="alias/doomed")["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    with expect_error("KMSInvalidStateException", f"{key_arn(kms, key_id)} is pending deletion."):
        kms.encrypt(KeyId="alias/doomed", Plaintext=b"x")


def test_fifty_aliases_per_key(kms: KmsClient, key_id: str) -> None:
    """A key can have at most 50 aliases; retargeting an alias to its own key is no new one."""
    for index in range(50):
        kms.create_alias(AliasName=f"alias/many-{index:02d}", TargetKeyId=key_id)
    with expect_error("LimitExceededException") as info:
        kms.create_alias(AliasName="alias/many-50", TargetKeyId=key_id)
    assert "50" in info.value.response["Error"]["Message"]
    other = create_key(kms)["KeyId"]
    kms.create_alias(AliasName="alias/elsewhere", TargetKeyId=other)
    with expect_error("LimitExceededException"):
        kms.update_alias(AliasName="alias/elsewhere", TargetKeyId=key_id)
    kms.update_alias(AliasName="alias/many-00", TargetKeyId=key_id)
    assert len(kms.list_aliases(KeyId=key_id, Limit=100)["Aliases"]) == 50
    kms.update_alias(AliasName="alias/many-00", TargetKeyId=other)
    kms.create_alias(AliasName="alias/many-50", TargetKeyId=key_id)
    assert len(kms.list_aliases(KeyId=key_id, Limit=100)["Aliases"]) == 50
