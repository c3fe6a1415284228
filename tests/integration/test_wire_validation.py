"""Server-side constraint checks in AWS's Coral wording, through boto3 and raw HTTP
(docs/aws-behaviours.md, "Validation"). botocore checks only required members and minimums,
so maximums, patterns and enums go through boto3; minimums and missing members need raw requests."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from tests.support.server import RunningServer
from tests.support.wire import Caller, KmsClient, LogWatch, assert_kms_error, kms_client

MODEL = botocore.session.get_session().get_service_model("kms")


@pytest.fixture(scope="module", autouse=True)
def no_unexpected_errors(kms_server: RunningServer) -> Iterator[None]:
    watch = LogWatch(kms_server.log_path)
    yield
    watch.assert_no_unexpected_errors()


@pytest.fixture()
def client(kms_server: RunningServer) -> KmsClient:
    """boto3 as a fresh account."""
    return kms_client(kms_server.endpoint)


@pytest.fixture()
def key_id(client: KmsClient) -> str:
    return str(client.create_key()["KeyMetadata"]["KeyId"])


@pytest.fixture()
def caller(kms_server: RunningServer) -> Caller:
    return Caller(kms_server.port)


def one_error(path: str, constraint: str, value: str | None = None) -> str:
    shown = "Value" if value is None else f"Value '{value}'"
    return (
        f"1 validation error detected: {shown} at '{path}' failed to satisfy constraint: "
        f"{constraint}"
    )


def validation_error(call: Any, **kwargs: Any) -> str:
    """Call boto3; it must fail with a 400 ValidationException. Returns the message."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    response = caught.value.response
    assert response["Error"]["Code"] == "ValidationException"
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert response["ResponseMetadata"]["HTTPHeaders"]["x-amzn-errortype"] == "ValidationException"
    return str(response["Error"]["Message"])


def raw_validation_error(caller: Caller, operation: str, body: dict[str, Any]) -> str:
    return str(assert_kms_error(caller.call(operation, body), "ValidationException")["message"])


# --- numbers -----------------------------------------------------------------------------------
def test_number_of_bytes_too_big(client: KmsClient, key_id: str) -> None:
    expected = one_error(
        "numberOfBytes", "Member must have value less than or equal to 1024", "1025"
    )
    assert validation_error(client.generate_random, NumberOfBytes=1025) == expected
    assert validation_error(client.generate_data_key, KeyId=key_id, NumberOfBytes=1025) == expected
    assert (
        validation_error(
            client.generate_data_key_without_plaintext, KeyId=key_id, NumberOfBytes=1025
        )
        == expected
    )


def test_number_of_bytes_zero(caller: Caller) -> None:
    """botocore refuses 0 itself; other SDKs send it, and the server must refuse too."""
    key = caller.create_key()
    expected = one_error("numberOfBytes", "Member must have value greater than or equal to 1", "0")
    assert raw_validation_error(caller, "GenerateRandom", {"NumberOfBytes": 0}) == expected
    assert (
        raw_validation_error(caller, "GenerateDataKey", {"KeyId": key, "NumberOfBytes": 0})
        == expected
    )


def test_generate_random_bounds_are_inclusive(client: KmsClient) -> None:
    assert len(client.generate_random(NumberOfBytes=1)["Plaintext"]) == 1
    assert len(client.generate_random(NumberOfBytes=1024)["Plaintext"]) == 1024


@pytest.mark.parametrize(
    ("days", "constraint"),
    [
        (89, "Member must have value greater than or equal to 90"),
        (2561, "Member must have value less than or equal to 2560"),
    ],
)
def test_rotation_period_out_of_range(caller: Caller, days: int, constraint: str) -> None:
    key = caller.create_key()
    message = raw_validation_error(
        caller, "EnableKeyRotation", {"KeyId": key, "RotationPeriodInDays": days}
    )
    assert message == one_error("rotationPeriodInDays", constraint, str(days))


def test_rotation_period_too_long_through_boto3(client: KmsClient, key_id: str) -> None:
    message = validation_error(client.enable_key_rotation, KeyId=key_id, RotationPeriodInDays=2561)
    assert message == one_error(
        "rotationPeriodInDays", "Member must have value less than or equal to 2560", "2561"
    )


def test_rotation_period_bounds_are_inclusive(client: KmsClient, key_id: str) -> None:
    for days in (90, 2560):
        client.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=days)
        assert client.get_key_rotation_status(KeyId=key_id)["RotationPeriodInDays"] == days


@pytest.mark.parametrize("operation", ["ListKeys", "ListAliases"])
def test_limit_zero(caller: Caller, operation: str) -> None:
    message = raw_validation_error(caller, operation, {"Limit": 0})
    assert message == one_error("limit", "Member must have value greater than or equal to 1", "0")


def test_limit_too_big(client: KmsClient, key_id: str) -> None:
    expected = one_error("limit", "Member must have value less than or equal to 1000", "1001")
    assert validation_error(client.list_keys, Limit=1001) == expected
    assert validation_error(client.list_aliases, Limit=1001) == expected
    assert validation_error(client.list_resource_tags, KeyId=key_id, Limit=1001) == expected
    assert validation_error(client.list_key_rotations, KeyId=key_id, Limit=1001) == expected


# --- lengths -------------------------------------------------------------------------------
def test_plaintext_too_long_is_not_echoed(client: KmsClient, key_id: str) -> None:
    plaintext = b"Z" * 4097
    message = validation_error(client.encrypt, KeyId=key_id, Plaintext=plaintext)
    assert message == one_error("plaintext", "Member must have length less than or equal to 4096")
    assert base64.b64encode(plaintext).decode()[:40] not in message
    assert "ZZZZ" not in message


def test_plaintext_at_the_limit_round_trips(client: KmsClient, key_id: str) -> None:
    blob = client.encrypt(KeyId=key_id, Plaintext=b"p" * 4096)["CiphertextBlob"]
    assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p" * 4096


def test_ciphertext_too_long(client: KmsClient) -> None:
    message = validation_error(client.decrypt, CiphertextBlob=b"c" * 6145)
    assert message == one_error(
        "ciphertextBlob", "Member must have length less than or equal to 6144"
    )


def test_description_too_long(client: KmsClient, key_id: str) -> None:
    suffix = (
        "' at 'description' failed to satisfy constraint: "
        "Member must have length less than or equal to 8192"
    )
    message = validation_error(client.create_key, Description="d" * 8193)
    assert message.startswith("1 validation error detected: Value 'ddd")
    assert message.endswith(suffix)
    message = validation_error(client.update_key_description, KeyId=key_id, Description="e" * 8193)
    assert message.endswith(suffix)


def test_tag_key_too_long(client: KmsClient, key_id: str) -> None:
    tag_key = "k" * 129
    expected = one_error(
        "tags.1.member.tagKey", "Member must have length less than or equal to 128", tag_key
    )
    tags = [{"TagKey": tag_key, "TagValue": "v"}]
    assert validation_error(client.create_key, Tags=tags) == expected
    assert validation_error(client.tag_resource, KeyId=key_id, Tags=tags) == expected


def test_tag_value_too_long_in_the_second_tag(client: KmsClient) -> None:
    tags = [{"TagKey": "a", "TagValue": "v"}, {"TagKey": "b", "TagValue": "w" * 257}]
    assert validation_error(client.create_key, Tags=tags) == one_error(
        "tags.2.member.tagValue", "Member must have length less than or equal to 256", "w" * 257
    )


def test_key_id_too_long(client: KmsClient) -> None:
    message = validation_error(client.describe_key, KeyId="k" * 2049)
    assert message.startswith("1 validation error detected: Value 'kkk")
    assert message.endswith(
        "' at 'keyId' failed to satisfy constraint: "
        "Member must have length less than or equal to 2048"
    )


# --- enums and patterns ----------------------------------------------------------------------
def _listed_enum(message: str) -> set[str]:
    return set(message.rsplit("enum value set: [", 1)[1].rstrip("]").split(", "))


def test_key_spec_enum(client: KmsClient) -> None:
    message = validation_error(client.create_key, KeySpec="HMAC_random")
    assert message.startswith(
        "1 validation error detected: Value 'HMAC_random' at 'keySpec' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )
    assert _listed_enum(message) == set(MODEL.shape_for("KeySpec").enum)


def test_key_usage_enum(client: KmsClient) -> None:
    message = validation_error(client.create_key, KeyUsage="RANDOM")
    assert message.startswith("1 validation error detected: Value 'RANDOM' at 'keyUsage'")
    assert _listed_enum(message) == set(MODEL.shape_for("KeyUsageType").enum)


def test_data_key_spec_enum(client: KmsClient, key_id: str) -> None:
    message = validation_error(client.generate_data_key, KeyId=key_id, KeySpec="AES_512")
    assert message == one_error(
        "keySpec", "Member must satisfy enum value set: [AES_256, AES_128]", "AES_512"
    )


def test_encryption_algorithm_enum(client: KmsClient, key_id: str) -> None:
    message = validation_error(
        client.encrypt, KeyId=key_id, Plaintext=b"x", EncryptionAlgorithm="AES"
    )
    assert message.startswith("1 validation error detected: Value 'AES' at 'encryptionAlgorithm'")
    assert _listed_enum(message) == set(MODEL.shape_for("EncryptionAlgorithmSpec").enum)


@pytest.mark.parametrize("alias_name", ["alias/has space", "alias/ümlaut", "alias/a;b"])
def test_alias_name_pattern(client: KmsClient, key_id: str, alias_name: str) -> None:
    message = validation_error(client.create_alias, AliasName=alias_name, TargetKeyId=key_id)
    assert message == one_error(
        "aliasName",
        "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$",
        alias_name,
    )


# --- several errors, missing members -----------------------------------------------------
def test_two_errors_at_once(client: KmsClient) -> None:
    message = validation_error(client.create_key, KeySpec="NOPE", Description="x" * 8193)
    assert message.startswith("2 validation errors detected: ")
    phrases = message.removeprefix("2 validation errors detected: ").split("; ")
    assert len(phrases) == 2
    assert {p.split("' at '")[1].split("'")[0] for p in phrases} == {"keySpec", "description"}


def test_three_errors_at_once(caller: Caller) -> None:
    message = raw_validation_error(
        caller, "CreateKey", {"KeySpec": "A", "KeyUsage": "B", "Origin": "C"}
    )
    assert message.startswith("3 validation errors detected: ")
    assert message.count("; ") == 2


@pytest.mark.parametrize(
    ("operation", "body", "path"),
    [
        ("DescribeKey", {}, "keyId"),
        ("Encrypt", {"Plaintext": "QUFB"}, "keyId"),
        ("Encrypt", {"KeyId": "alias/x"}, "plaintext"),
        ("CreateAlias", {"AliasName": "alias/x"}, "targetKeyId"),
        ("DeleteAlias", {}, "aliasName"),
        ("TagResource", {"KeyId": "alias/x"}, "tags"),
        ("UntagResource", {"KeyId": "alias/x"}, "tagKeys"),
        ("Decrypt", {}, "ciphertextBlob"),
    ],
)
def test_missing_required_member(
    caller: Caller, operation: str, body: dict[str, Any], path: str
) -> None:
    assert raw_validation_error(caller, operation, body) == (
        f"1 validation error detected: Value null at '{path}' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_generate_random_without_number_of_bytes(client: KmsClient) -> None:
    """Not required in the model; AWS answers its own sentence (docs/aws-behaviours.md)."""
    assert validation_error(client.generate_random) == "NumberOfBytes is required."


def test_validation_runs_before_key_lookup(client: KmsClient) -> None:
    """An invalid request about a key that does not exist is still a ValidationException."""
    message = validation_error(
        client.encrypt, KeyId="1234abcd-12ab-34cd-56ef-1234567890ab", Plaintext=b"x" * 4097
    )
    assert "at 'plaintext'" in message


def test_validation_error_through_another_region_and_account(kms_server: RunningServer) -> None:
    """The wording does not depend on who asks."""
    client = kms_client(kms_server.endpoint, region="ap-southeast-2")
    assert validation_error(client.generate_random, NumberOfBytes=2000).startswith(
        "1 validation error detected: Value '2000' at 'numberOfBytes'"
    )
