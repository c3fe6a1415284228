"""Tags (TagResource, UntagResource, ListResourceTags) and key policies (GetKeyPolicy,
PutKeyPolicy, ListKeyPolicies) through boto3."""

from __future__ import annotations

import json

import pytest

from tests.support.kms_ops import (
    KmsClient,
    account_of,
    create_key,
    expect_error,
    key_arn,
)

MISSING_KEY = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"


def _tags(key: str, value: str = "v") -> list[dict[str, str]]:
    return [{"TagKey": key, "TagValue": value}]


def _tag_dict(kms: KmsClient, key_id: str) -> dict[str, str]:
    return {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=key_id)["Tags"]}


# --- TagResource / UntagResource / ListResourceTags ----------------------------------------
def test_tag_overwrite_and_untag(kms: KmsClient, key_id: str) -> None:
    assert kms.list_resource_tags(KeyId=key_id) | {"ResponseMetadata": None} == {
        "Tags": [],
        "Truncated": False,
        "ResponseMetadata": None,
    }
    response = kms.tag_resource(
        KeyId=key_id,
        Tags=[{"TagKey": "b", "TagValue": "2"}, {"TagKey": "a", "TagValue": "1"}],
    )
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    assert kms.list_resource_tags(KeyId=key_id)["Tags"] == [
        {"TagKey": "a", "TagValue": "1"},
        {"TagKey": "b", "TagValue": "2"},
    ]
    kms.tag_resource(KeyId=key_arn(kms, key_id), Tags=_tags("a", "one"))
    assert _tag_dict(kms, key_id) == {"a": "one", "b": "2"}
    kms.untag_resource(KeyId=key_id, TagKeys=["a", "never-there"])
    assert _tag_dict(kms, key_id) == {"b": "2"}
    kms.untag_resource(KeyId=key_arn(kms, key_id), TagKeys=["unknown"])
    assert _tag_dict(kms, key_id) == {"b": "2"}


def test_tag_keys_are_case_sensitive_and_values_may_be_empty(kms: KmsClient, key_id: str) -> None:
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": "Env", "TagValue": ""}, {"TagKey": "env", "TagValue": "x"}]
    )
    assert _tag_dict(kms, key_id) == {"Env": "", "env": "x"}


@pytest.mark.parametrize("tag_key", ["aws:owner", "AWS:owner", "Aws:x", "aws:"])
def test_reserved_aws_prefix(kms: KmsClient, key_id: str, tag_key: str) -> None:
    with expect_error("TagException", "Tags beginning with aws: are reserved"):
        kms.tag_resource(KeyId=key_id, Tags=_tags(tag_key))
    with expect_error("TagException", "Tags beginning with aws: are reserved"):
        kms.create_key(Tags=_tags(tag_key))
    assert _tag_dict(kms, key_id) == {}
    assert len(kms.list_keys()["Keys"]) == 1  # the failed CreateKey left nothing behind


def test_aws_inside_a_key_is_fine(kms: KmsClient, key_id: str) -> None:
    kms.tag_resource(KeyId=key_id, Tags=_tags("my-aws:key"))
    assert _tag_dict(kms, key_id) == {"my-aws:key": "v"}


def test_duplicate_tag_keys(kms: KmsClient, key_id: str) -> None:
    duplicate = [{"TagKey": "k", "TagValue": "1"}, {"TagKey": "k", "TagValue": "2"}]
    with expect_error("TagException", "Duplicate tag keys"):
        kms.tag_resource(KeyId=key_id, Tags=duplicate)
    with expect_error("TagException", "Duplicate tag keys"):
        kms.create_key(Tags=duplicate)
    assert _tag_dict(kms, key_id) == {}


def test_fifty_tags_per_key(kms: KmsClient) -> None:
    fifty = [{"TagKey": f"k{index:02d}", "TagValue": str(index)} for index in range(50)]
    with expect_error("TagException", "Too many tags"):
        kms.create_key(Tags=[*fifty, {"TagKey": "k50", "TagValue": "x"}])
    assert kms.list_keys()["Keys"] == []
    key_id = create_key(kms, Tags=fifty)["KeyId"]
    with expect_error("TagException", "Too many tags"):
        kms.tag_resource(KeyId=key_id, Tags=_tags("one-more"))
    kms.tag_resource(KeyId=key_id, Tags=_tags("k07", "overwritten"))  # not a new tag
    assert _tag_dict(kms, key_id)["k07"] == "overwritten"
    kms.untag_resource(KeyId=key_id, TagKeys=["k00"])
    kms.tag_resource(KeyId=key_id, Tags=_tags("replacement"))
    assert len(_tag_dict(kms, key_id)) == 50


def test_tag_lengths(kms: KmsClient, key_id: str) -> None:
    with expect_error("ValidationException") as info:
        kms.tag_resource(KeyId=key_id, Tags=_tags("k" * 129))
    assert info.value.response["Error"]["Message"].endswith(
        "at 'tags.1.member.tagKey' failed to satisfy constraint: "
        "Member must have length less than or equal to 128"
    )
    with expect_error("ValidationException") as info:
        kms.tag_resource(
            KeyId=key_id,
            Tags=[{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "long", "TagValue": "v" * 257}],
        )
    assert info.value.response["Error"]["Message"].endswith(
        "at 'tags.2.member.tagValue' failed to satisfy constraint: "
        "Member must have length less than or equal to 256"
    )
    kms.tag_resource(KeyId=key_id, Tags=[{"TagKey": "k" * 128, "TagValue": "v" * 256}])
    assert _tag_dict(kms, key_id) == {"k" * 128: "v" * 256}


def test_tags_by_key_state(kms: KmsClient, key_id: str) -> None:
    kms.disable_key(KeyId=key_id)
    kms.tag_resource(KeyId=key_id, Tags=_tags("while-disabled"))
    kms.schedule_key_deletion(KeyId=key_id)
    message = f"{key_arn(kms, key_id)} is pending deletion."
    with expect_error("KMSInvalidStateException", message):
        kms.tag_resource(KeyId=key_id, Tags=_tags("late"))
    with expect_error("KMSInvalidStateException", message):
        kms.untag_resource(KeyId=key_id, TagKeys=["while-disabled"])
    assert _tag_dict(kms, key_id) == {"while-disabled": "v"}


def test_tag_operations_take_only_key_id_or_arn(kms: KmsClient, key_id: str) -> None:
    kms.create_alias(AliasName="alias/tagged", TargetKeyId=key_id)
    with expect_error("NotFoundException", "Invalid keyId 'alias/tagged'"):
        kms.tag_resource(KeyId="alias/tagged", Tags=_tags("k"))
    with expect_error("NotFoundException", "Invalid keyId 'alias/tagged'"):
        kms.list_resource_tags(KeyId="alias/tagged")
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.untag_resource(KeyId=MISSING_KEY, TagKeys=["k"])


def test_list_resource_tags_paginates(kms: KmsClient, key_id: str) -> None:
    kms.tag_resource(
        KeyId=key_id, Tags=[{"TagKey": f"t{index}", "TagValue": str(index)} for index in range(5)]
    )
    pages = list(
        kms.get_paginator("list_resource_tags").paginate(
            KeyId=key_id, PaginationConfig={"PageSize": 2}
        )
    )
    assert [len(page["Tags"]) for page in pages] == [2, 2, 1]
    assert [page["Truncated"] for page in pages] == [True, True, False]
    assert [t["TagKey"] for page in pages for t in page["Tags"]] == [f"t{i}" for i in range(5)]
    with expect_error("InvalidMarkerException"):
        kms.list_resource_tags(KeyId=key_id, Marker="garbage")


def test_tags_belong_to_one_key(kms: KmsClient, key_id: str) -> None:
    other = create_key(kms)["KeyId"]
    kms.tag_resource(KeyId=key_id, Tags=_tags("mine"))
    assert _tag_dict(kms, other) == {}


# --- Key policies --------------------------------------------------------------------------
def default_policy(account_id: str) -> str:
    """AWS's default key policy, byte for byte."""
    return (
        "{\n"
        '  "Version" : "2012-10-17",\n'
        '  "Id" : "key-default-1",\n'
        '  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n'
        '    "Effect" : "Allow",\n'
        '    "Principal" : {\n'
        f'      "AWS" : "arn:aws:iam::{account_id}:root"\n'
        "    },\n"
        '    "Action" : "kms:*",\n'
        '    "Resource" : "*"\n'
        "  } ]\n"
        "}"
    )


def test_default_policy_text(kms: KmsClient, key_id: str) -> None:
    response = kms.get_key_policy(KeyId=key_id, PolicyName="default")
    assert response["Policy"] == default_policy(account_of(kms))
    assert response["PolicyName"] == "default"
    without_name = kms.get_key_policy(KeyId=key_arn(kms, key_id))
    assert without_name["Policy"] == response["Policy"]
    assert without_name["PolicyName"] == "default"


def test_put_get_policy_round_trip(kms: KmsClient, key_id: str) -> None:
    """The document comes back exactly as put, whitespace and key order included."""
    # The caller (the account root) keeps kms:PutKeyPolicy: the lockout safety check.
    policy = (
        '{"Version": "2012-10-17",\n  "Statement": [{"Sid": "s1", "Effect": "Allow",'
        ' "Principal": {"AWS": "*"}, "Action": "kms:Decrypt", "Resource": "*"},'
        ' {"Effect": "Allow", "Principal": {"AWS": "' + account_of(kms) + '"},'
        ' "Action": "kms:*", "Resource": "*"}],'
        '  "Id": "custom"}'
    )
    response = kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    assert kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"] == policy
    kms.put_key_policy(KeyId=key_arn(kms, key_id), Policy=policy.replace("custom", "again"))
    assert json.loads(kms.get_key_policy(KeyId=key_id)["Policy"])["Id"] == "again"


def test_policy_from_create_key(kms: KmsClient) -> None:
    policy = json.dumps(
        {"Version": "2012-10-17", "Statement": [_root_statement(account_of(kms))]}, indent=4
    )
    key_id = create_key(kms, Policy=policy)["KeyId"]
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == policy


@pytest.mark.parametrize(
    "policy", ["{not json", "[]", '"a string"', '{"Version": "2012-10-17"}', "null"]
)
def test_malformed_policy(kms: KmsClient, key_id: str, policy: str) -> None:
    with expect_error("MalformedPolicyDocumentException"):
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    with expect_error("MalformedPolicyDocumentException"):
        kms.create_key(Policy=policy)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == default_policy(account_of(kms))
    assert len(kms.list_keys()["Keys"]) == 1


def _root_statement(account: str) -> dict[str, object]:
    return {"Effect": "Allow", "Principal": {"AWS": account}, "Action": "kms:*", "Resource": "*"}


def _policy_of_size(size: int, account: str) -> str:
    statement = json.dumps(_root_statement(account))
    skeleton = '{"Statement": [' + statement + '], "Id": ""}'
    policy = skeleton.replace('"Id": ""', '"Id": "' + "x" * (size - len(skeleton)) + '"')
    assert len(policy.encode()) == size
    return policy


def test_policy_size_limit(kms: KmsClient, key_id: str) -> None:
    """32 KB is the document limit (LimitExceededException), below the model's 131072."""
    account = account_of(kms)
    at_limit = _policy_of_size(32768, account)
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=at_limit)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == at_limit
    with expect_error("LimitExceededException"):
        kms.put_key_policy(
            KeyId=key_id, PolicyName="default", Policy=_policy_of_size(32769, account)
        )
    with expect_error("LimitExceededException"):
        kms.create_key(Policy=_policy_of_size(40000, account))
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == at_limit
    with expect_error("ValidationException") as info:
        kms.put_key_policy(
            KeyId=key_id, PolicyName="default", Policy=_policy_of_size(131073, account)
        )
    assert (
        "Member must have length less than or equal to 131072"
        in (info.value.response["Error"]["Message"])
    )


def test_policy_character_pattern(kms: KmsClient, key_id: str) -> None:
    with expect_error("ValidationException") as info:
        kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy='{"Statement": ["☃"]}')
    assert "at 'policy' failed to satisfy constraint" in info.value.response["Error"]["Message"]


def test_policy_names(kms: KmsClient, key_id: str) -> None:
    with expect_error("NotFoundException"):
        kms.get_key_policy(KeyId=key_id, PolicyName="other")
    with expect_error("NotFoundException"):
        kms.put_key_policy(KeyId=key_id, PolicyName="other", Policy='{"Statement": []}')
    with expect_error("ValidationException"):
        kms.get_key_policy(KeyId=key_id, PolicyName="not-a-word")
    response = kms.list_key_policies(KeyId=key_id)
    assert response["PolicyNames"] == ["default"]
    assert response["Truncated"] is False
    assert kms.list_key_policies(KeyId=key_arn(kms, key_id))["PolicyNames"] == ["default"]
    pages = list(kms.get_paginator("list_key_policies").paginate(KeyId=key_id))
    assert [page["PolicyNames"] for page in pages] == [["default"]]


def test_policies_in_every_key_state(kms: KmsClient, key_id: str) -> None:
    kms.disable_key(KeyId=key_id)
    kms.schedule_key_deletion(KeyId=key_id)
    policy = json.dumps({"Statement": [_root_statement(account_of(kms))]})
    kms.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)
    assert kms.get_key_policy(KeyId=key_id)["Policy"] == policy
    assert kms.list_key_policies(KeyId=key_id)["PolicyNames"] == ["default"]


def test_policy_operations_on_missing_keys(kms: KmsClient, key_id: str) -> None:
    message = f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"
    with expect_error("NotFoundException", message):
        kms.get_key_policy(KeyId=MISSING_KEY, PolicyName="default")
    with expect_error("NotFoundException", message):
        kms.put_key_policy(KeyId=MISSING_KEY, PolicyName="default", Policy='{"Statement": []}')
    with expect_error("NotFoundException", message):
        kms.list_key_policies(KeyId=MISSING_KEY)
    kms.create_alias(AliasName="alias/pol", TargetKeyId=key_id)
    with expect_error("NotFoundException", "Invalid keyId 'alias/pol'"):
        kms.get_key_policy(KeyId="alias/pol", PolicyName="default")
