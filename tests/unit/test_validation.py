"""The schema layer on its own: ``load_request`` over ``SCHEMAS``, with AWS's Coral wording.

The schemas are also compared, member by member, with botocore's KMS service model, so that a
constraint that drifts from AWS's is caught here rather than by a user.
"""

from __future__ import annotations

import base64
from typing import Any

import botocore.session
import pytest

from kms_service.domain.errors import SerializationException, ValidationException
from kms_service.wire.fields import (
    AwsBlob,
    AwsBoolean,
    AwsField,
    AwsInteger,
    AwsList,
    AwsString,
    AwsStringMap,
    AwsStruct,
    AwsTimestamp,
)
from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import load_request

KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
MODEL = botocore.session.get_session().get_service_model("kms")
#: Members newer than the schemas: ignored like any unknown member (forward compatibility).
NEWER_MEMBERS = {("ListKeys", "ResourceOwners"), ("GenerateRandom", "Recipient")}


def load(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    return load_request(SCHEMAS[operation](), body)


def validation_message(operation: str, body: dict[str, Any]) -> str:
    with pytest.raises(ValidationException) as caught:
        load(operation, body)
    assert caught.value.status == 400
    assert caught.value.message is not None
    return caught.value.message


def one_error(path: str, constraint: str, value: str | None = None) -> str:
    shown = "Value" if value is None else f"Value '{value}'"
    return (
        f"1 validation error detected: {shown} at '{path}' failed to satisfy constraint: "
        f"{constraint}"
    )


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- the schemas against botocore's model ------------------------------------------------
def _compare(shape: Any, field: AwsField, path: str, problems: list[str]) -> None:
    meta = shape.metadata
    if isinstance(field, AwsString):
        assert shape.type_name == "string", path
        if meta.get("min", field.min_length) != field.min_length:
            problems.append(f"{path}: min {meta.get('min')} != {field.min_length}")
        if meta.get("max") != field.max_length:
            problems.append(f"{path}: max {meta.get('max')} != {field.max_length}")
        if meta.get("pattern") != field.pattern_text:
            problems.append(f"{path}: pattern {meta.get('pattern')} != {field.pattern_text}")
        if set(shape.enum or []) != set(field.enum or []):
            problems.append(
                f"{path}: enum differs by {set(shape.enum or []) ^ set(field.enum or [])}"
            )
    elif isinstance(field, AwsBlob):
        assert shape.type_name == "blob", path
        if (meta.get("min"), meta.get("max")) != (field.min_length, field.max_length):
            problems.append(f"{path}: bounds {meta.get('min')}..{meta.get('max')}")
    elif isinstance(field, AwsInteger):
        assert shape.type_name == "integer", path
        if (meta.get("min"), meta.get("max")) != (field.minimum, field.maximum):
            problems.append(f"{path}: range {meta.get('min')}..{meta.get('max')}")
    elif isinstance(field, AwsBoolean):
        assert shape.type_name == "boolean", path
    elif isinstance(field, AwsStringMap):
        assert shape.type_name == "map", path
    elif isinstance(field, AwsList):
        assert shape.type_name == "list", path
        if meta.get("max") != field.max_length:
            problems.append(f"{path}: list max {meta.get('max')} != {field.max_length}")
        if isinstance(field.member, AwsField):
            _compare(shape.member, field.member, f"{path}.member", problems)
        else:
            _compare_structure(shape.member, field.member(), f"{path}.member", problems, "")
    elif isinstance(field, AwsStruct):
        _compare_structure(shape, field.schema(), path, problems, "")
    elif isinstance(field, AwsTimestamp):
        assert shape.type_name == "timestamp", path
    else:  # pragma: no cover - a new field type needs a rule here
        problems.append(f"{path}: unknown field type {type(field).__name__}")


def _compare_structure(
    shape: Any, schema: Any, path: str, problems: list[str], operation: str
) -> None:
    required = set(shape.required_members)
    for name, member_shape in shape.members.items():
        field = schema.fields.get(name)
        if field is None:
            if (operation, name) not in NEWER_MEMBERS:
                problems.append(f"{path}.{name}: missing from the schema")
            continue
        if (name in required) != field.required:
            problems.append(f"{path}.{name}: required {name in required} != {field.required}")
        _compare(member_shape, field, f"{path}.{name}", problems)
    problems.extend(
        f"{path}.{name}: not in the model" for name in set(schema.fields) - set(shape.members)
    )


@pytest.mark.parametrize("operation", sorted(SCHEMAS))
def test_schema_matches_the_botocore_model(operation: str) -> None:
    """Same members, required flags, lengths, ranges, patterns and enum sets as AWS's model."""
    problems: list[str] = []
    shape = MODEL.operation_model(operation).input_shape
    _compare_structure(shape, SCHEMAS[operation](), operation, problems, operation)
    assert problems == []


def test_every_schema_belongs_to_a_real_operation() -> None:
    assert set(SCHEMAS) <= set(MODEL.operation_names)


# --- Coral wording -----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (1025, "Member must have value less than or equal to 1024"),
    ],
)
@pytest.mark.parametrize("operation", ["GenerateRandom", "GenerateDataKey"])
def test_number_of_bytes_bounds(operation: str, value: int, constraint: str) -> None:
    message = validation_message(operation, {"KeyId": KEY, "NumberOfBytes": value})
    assert message == one_error("numberOfBytes", constraint, str(value))


def test_number_of_bytes_bounds_are_inclusive() -> None:
    assert load("GenerateRandom", {"NumberOfBytes": 1})["NumberOfBytes"] == 1
    assert load("GenerateRandom", {"NumberOfBytes": 1024})["NumberOfBytes"] == 1024


def test_plaintext_too_long_is_not_echoed() -> None:
    """Plaintext is sensitive: "Value at 'plaintext'" with no value."""
    plaintext = b64(b"s" * 4097)
    message = validation_message("Encrypt", {"KeyId": KEY, "Plaintext": plaintext})
    assert message == one_error("plaintext", "Member must have length less than or equal to 4096")
    assert plaintext not in message


def test_plaintext_of_4096_bytes_is_accepted() -> None:
    assert (
        load("Encrypt", {"KeyId": KEY, "Plaintext": b64(b"p" * 4096)})["Plaintext"] == b"p" * 4096
    )


def test_ciphertext_blob_too_long_is_not_echoed() -> None:
    message = validation_message("Decrypt", {"CiphertextBlob": b64(b"c" * 6145)})
    assert message == one_error(
        "ciphertextBlob", "Member must have length less than or equal to 6144"
    )


def test_description_too_long() -> None:
    message = validation_message("CreateKey", {"Description": "d" * 8193})
    assert message.startswith("1 validation error detected: Value 'ddd")
    assert message.endswith(
        "' at 'description' failed to satisfy constraint: "
        "Member must have length less than or equal to 8192"
    )
    assert load("CreateKey", {"Description": "d" * 8192})["Description"] == "d" * 8192


def test_tag_key_too_long_uses_the_list_member_path() -> None:
    key = "k" * 129
    message = validation_message("CreateKey", {"Tags": [{"TagKey": key, "TagValue": "v"}]})
    assert message == one_error(
        "tags.1.member.tagKey", "Member must have length less than or equal to 128", key
    )


def test_list_member_index_is_one_based_and_per_item() -> None:
    tags = [{"TagKey": "ok", "TagValue": "v"}, {"TagKey": "ok2", "TagValue": "v" * 257}]
    message = validation_message("TagResource", {"KeyId": KEY, "Tags": tags})
    assert message == one_error(
        "tags.2.member.tagValue", "Member must have length less than or equal to 256", "v" * 257
    )


def test_untag_keys_member_path() -> None:
    message = validation_message("UntagResource", {"KeyId": KEY, "TagKeys": ["a", ""]})
    assert message == one_error(
        "tagKeys.2.member", "Member must have length greater than or equal to 1", ""
    )


def _enum_values(message: str) -> set[str]:
    listed = message.rsplit("Member must satisfy enum value set: [", 1)[1]
    assert listed.endswith("]")
    return set(listed[:-1].split(", "))


@pytest.mark.parametrize(
    ("member", "shape", "value"),
    [("KeySpec", "KeySpec", "HMAC_random"), ("KeyUsage", "KeyUsageType", "RANDOM")],
)
def test_enum_violation_lists_the_model_values(member: str, shape: str, value: str) -> None:
    message = validation_message("CreateKey", {member: value})
    path = member[0].lower() + member[1:]
    assert message.startswith(
        f"1 validation error detected: Value '{value}' at '{path}' failed to satisfy "
        "constraint: Member must satisfy enum value set: ["
    )
    assert _enum_values(message) == set(MODEL.shape_for(shape).enum)


def test_two_errors_are_counted_and_joined() -> None:
    message = validation_message("CreateKey", {"KeySpec": "NOPE", "Description": "x" * 8193})
    assert message.startswith("2 validation errors detected: ")
    phrases = message.removeprefix("2 validation errors detected: ").split("; ")
    assert len(phrases) == 2
    assert any("at 'keySpec' failed to satisfy constraint" in p for p in phrases)
    assert any("at 'description' failed to satisfy constraint" in p for p in phrases)


@pytest.mark.parametrize(
    ("operation", "body", "path"),
    [
        ("DescribeKey", {}, "keyId"),
        ("Encrypt", {"KeyId": KEY}, "plaintext"),
        ("CreateAlias", {"TargetKeyId": KEY}, "aliasName"),
        ("UpdateKeyDescription", {"KeyId": KEY}, "description"),
        ("TagResource", {"KeyId": KEY}, "tags"),
        ("CreateKey", {"Tags": [{"TagKey": "k"}]}, "tags.1.member.tagValue"),
    ],
)
def test_missing_required_member(operation: str, body: dict[str, Any], path: str) -> None:
    assert validation_message(operation, body) == (
        f"1 validation error detected: Value null at '{path}' failed to satisfy constraint: "
        "Member must not be null"
    )


def test_missing_and_invalid_together() -> None:
    message = validation_message("Encrypt", {"Plaintext": b64(b"x" * 5000)})
    assert message.startswith("2 validation errors detected: ")
    assert "Value null at 'keyId' failed to satisfy constraint: Member must not be null" in message
    assert "Value at 'plaintext' failed" in message


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (89, "Member must have value greater than or equal to 90"),
        (2561, "Member must have value less than or equal to 2560"),
    ],
)
def test_rotation_period_bounds(value: int, constraint: str) -> None:
    message = validation_message("EnableKeyRotation", {"KeyId": KEY, "RotationPeriodInDays": value})
    assert message == one_error("rotationPeriodInDays", constraint, str(value))


@pytest.mark.parametrize(
    ("value", "constraint"),
    [
        (0, "Member must have value greater than or equal to 1"),
        (1001, "Member must have value less than or equal to 1000"),
    ],
)
@pytest.mark.parametrize("operation", ["ListKeys", "ListAliases", "ListResourceTags"])
def test_limit_bounds(operation: str, value: int, constraint: str) -> None:
    message = validation_message(operation, {"KeyId": KEY, "Limit": value})
    assert message == one_error("limit", constraint, str(value))


@pytest.mark.parametrize("name", ["alias/has space", "alias/é", "alias/semi;colon", "alias/a*b"])
def test_alias_name_pattern(name: str) -> None:
    message = validation_message("CreateAlias", {"AliasName": name, "TargetKeyId": KEY})
    assert message == one_error(
        "aliasName", "Member must satisfy regular expression pattern: ^[a-zA-Z0-9:/_-]+$", name
    )


def test_alias_name_too_long() -> None:
    name = "alias/" + "a" * 251
    message = validation_message("DeleteAlias", {"AliasName": name})
    assert message == one_error(
        "aliasName", "Member must have length less than or equal to 256", name
    )


def test_empty_key_id_is_too_short() -> None:
    message = validation_message("DescribeKey", {"KeyId": ""})
    assert message == one_error("keyId", "Member must have length greater than or equal to 1", "")


def test_nested_structure_member_path() -> None:
    body = {"KeyId": KEY, "Recipient": {"KeyEncryptionAlgorithm": "RSA"}}
    message = validation_message("Decrypt", body)
    assert message.startswith(
        "1 validation error detected: Value 'RSA' at 'recipient.keyEncryptionAlgorithm'"
    )


# --- wrong JSON types are SerializationException -----------------------------------------
@pytest.mark.parametrize(
    ("operation", "body"),
    [
        ("DescribeKey", {"KeyId": 5}),
        ("DescribeKey", {"KeyId": ["a"]}),
        ("Encrypt", {"KeyId": KEY, "Plaintext": "not base64!"}),
        ("Encrypt", {"KeyId": KEY, "Plaintext": "QUE"}),  # unpadded
        ("Encrypt", {"KeyId": KEY, "Plaintext": "-_-_"}),  # URL-safe alphabet
        ("Encrypt", {"KeyId": KEY, "Plaintext": 12}),
        ("Encrypt", {"KeyId": KEY, "Plaintext": "QUFB", "EncryptionContext": {"a": 1}}),
        ("Encrypt", {"KeyId": KEY, "Plaintext": "QUFB", "EncryptionContext": ["a"]}),
        ("GenerateRandom", {"NumberOfBytes": "3"}),
        ("GenerateRandom", {"NumberOfBytes": 1.5}),
        ("GenerateRandom", {"NumberOfBytes": True}),
        ("CreateKey", {"Tags": {}}),
        ("CreateKey", {"Tags": [1]}),
        ("CreateKey", {"Tags": [{"TagKey": 1, "TagValue": "v"}]}),
        ("CreateKey", {"MultiRegion": "true"}),
        ("CreateKey", {"MultiRegion": 1}),
        ("UntagResource", {"KeyId": KEY, "TagKeys": "k"}),
        ("UntagResource", {"KeyId": KEY, "TagKeys": [1]}),
        ("Decrypt", {"CiphertextBlob": "AAAA", "Recipient": 5}),
        ("ListKeys", {"Marker": 7}),
    ],
)
def test_wrong_json_type_is_a_serialization_error(operation: str, body: dict[str, Any]) -> None:
    with pytest.raises(SerializationException) as caught:
        load(operation, body)
    assert caught.value.status == 400
    assert caught.value.message


def test_serialization_wins_over_validation() -> None:
    """A wrong type anywhere makes the whole request unparseable, as on AWS."""
    with pytest.raises(SerializationException):
        load("Encrypt", {"KeyId": 5, "Plaintext": b64(b"x" * 5000)})


# --- what loads ----------------------------------------------------------------------------
def test_blobs_are_decoded_and_members_kept() -> None:
    request = load(
        "Encrypt",
        {"KeyId": KEY, "Plaintext": b64(b"\x00\x01"), "EncryptionContext": {"a": "b"}},
    )
    assert request == {"KeyId": KEY, "Plaintext": b"\x00\x01", "EncryptionContext": {"a": "b"}}


def test_nulls_are_absent() -> None:
    request = load("ListKeys", {"Limit": None, "Marker": None})
    assert request == {}
    request = load("CreateKey", {"Description": None, "Tags": None, "MultiRegion": None})
    assert request == {}


def test_null_required_member_is_missing() -> None:
    assert "Value null at 'keyId'" in validation_message("DescribeKey", {"KeyId": None})


def test_unknown_members_are_ignored_at_every_level() -> None:
    request = load(
        "CreateKey",
        {"Future": {"x": 1}, "Tags": [{"TagKey": "k", "TagValue": "v", "Extra": 1}]},
    )
    assert request == {"Tags": [{"TagKey": "k", "TagValue": "v"}]}


def test_integral_float_is_an_integer() -> None:
    """Some JSON encoders write 32 as 32.0; it is still an integer."""
    assert load("GenerateRandom", {"NumberOfBytes": 32.0})["NumberOfBytes"] == 32
