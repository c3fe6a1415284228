"""Request and response bodies must be what botocore sends and returns for the same calls."""

from __future__ import annotations

import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore import parsers, serialize
from botocore.model import Shape  # type: ignore[import-untyped]

from clients.kms.errors import ParamSerializationError, ResponseParseError
from clients.kms.protocol import (
    MAP_MEMBERS,
    REQUEST_BLOB_MEMBERS,
    REQUEST_TIMESTAMP_MEMBERS,
    RESPONSE_BLOB_MEMBERS,
    RESPONSE_TIMESTAMP_MEMBERS,
    decode_response,
    encode_request,
)

MODEL = botocore.session.get_session().get_service_model("kms")


def botocore_body(operation: str, params: dict[str, Any]) -> Any:
    serializer = serialize.create_serializer("json", include_validation=False)
    request = serializer.serialize_to_request(params, MODEL.operation_model(operation))
    return json.loads(request["body"] or b"{}")


def botocore_parse(operation: str, body: dict[str, Any]) -> dict[str, Any]:
    parser = parsers.create_parser("json")
    shape = MODEL.operation_model(operation).output_shape
    raw = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}
    parsed: dict[str, Any] = parser.parse(raw, shape)
    parsed.pop("ResponseMetadata", None)
    return parsed


REQUESTS = [
    ("Encrypt", {"KeyId": "k", "Plaintext": b"\x00\x01hello", "EncryptionContext": {"a": "b"}}),
    ("Encrypt", {"KeyId": "alias/x", "Plaintext": "text is utf-8 encoded ✓"}),
    (
        "Decrypt",
        {"CiphertextBlob": bytearray(b"\xff" * 7), "EncryptionContext": {"Plaintext": "x"}},
    ),
    (
        "ReEncrypt",
        {
            "CiphertextBlob": b"c",
            "SourceEncryptionContext": {"Plaintext": "s"},
            "DestinationEncryptionContext": {"Message": "d"},
            "DestinationKeyId": "k2",
        },
    ),
    ("GenerateDataKey", {"KeyId": "k", "KeySpec": "AES_256", "NumberOfBytes": 32}),
    ("ListKeys", {}),
    ("ListKeys", {"Limit": 10, "Marker": "m"}),
    ("CreateKey", {"Tags": [{"TagKey": "a", "TagValue": ""}], "MultiRegion": False}),
    ("TagResource", {"KeyId": "k", "Tags": [{"TagKey": "t", "TagValue": "v"}]}),
    ("Sign", {"KeyId": "k", "Message": b"m", "SigningAlgorithm": "ECDSA_SHA_256"}),
    (
        "VerifyMac",
        {"KeyId": "k", "Message": "m", "Mac": b"\x01" * 32, "MacAlgorithm": "HMAC_SHA_256"},
    ),
    (
        "ImportKeyMaterial",
        {
            "KeyId": "k",
            "ImportToken": b"token",
            "EncryptedKeyMaterial": b"material",
            "ValidTo": datetime(2030, 1, 1, tzinfo=UTC),
        },
    ),
    ("ImportKeyMaterial", {"KeyId": "k", "ValidTo": datetime(2030, 1, 1, 12, 30)}),
    (
        "CreateGrant",
        {
            "KeyId": "k",
            "GranteePrincipal": "p",
            "Operations": ["Decrypt"],
            "Constraints": {"EncryptionContextSubset": {"CreationDate": "not a timestamp"}},
        },
    ),
]


@pytest.mark.parametrize(("operation", "params"), REQUESTS)
def test_request_body_equals_botocore(operation: str, params: dict[str, Any]) -> None:
    assert json.loads(encode_request(params)) == botocore_body(operation, params)


def test_blobs_are_padded_standard_base64() -> None:
    body = json.loads(
        encode_request({"Plaintext": b"\x00\x01hello", "CiphertextBlob": b"\xfb\xff"})
    )
    assert body == {"Plaintext": "AAFoZWxsbw==", "CiphertextBlob": "+/8="}


def test_none_parameters_are_left_out() -> None:
    assert json.loads(encode_request({"KeyId": "k", "Limit": None})) == {"KeyId": "k"}


def test_encryption_context_values_are_never_converted() -> None:
    context = {"Plaintext": "abc", "ValidTo": "2030", "CiphertextBlob": "x"}
    body = json.loads(encode_request({"EncryptionContext": context}))
    assert body["EncryptionContext"] == context


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (datetime(2030, 1, 1, tzinfo=UTC), 1893456000),
        (datetime(2030, 1, 1, 2, tzinfo=timezone(timedelta(hours=2))), 1893456000),
        (datetime(2030, 1, 1), 1893456000),
        ("2030-01-01T00:00:00Z", 1893456000),
        (1893456000, 1893456000),
        (1893456000.5, 1893456000.5),
        (datetime(2030, 1, 1, 0, 0, 0, 500000, tzinfo=UTC), 1893456000.5),
    ],
)
def test_request_timestamps_are_epoch_seconds(value: Any, expected: float) -> None:
    assert json.loads(encode_request({"ValidTo": value}))["ValidTo"] == expected


@pytest.mark.parametrize("value", [object(), {1, 2}, "not-a-date"])
def test_unserialisable_values_raise(value: Any) -> None:
    name = "ValidTo" if isinstance(value, str) else "Anything"
    with pytest.raises(ParamSerializationError):
        encode_request({name: value})


RESPONSES = [
    (
        "Encrypt",
        {
            "CiphertextBlob": "AAFoZWxsbw==",
            "KeyId": "arn:k",
            "EncryptionAlgorithm": "SYMMETRIC_DEFAULT",
        },
    ),
    ("GenerateDataKey", {"CiphertextBlob": "AQ==", "Plaintext": "Ag==", "KeyId": "arn"}),
    (
        "DescribeKey",
        {
            "KeyMetadata": {
                "KeyId": "id",
                "CreationDate": 1614905581.947,
                "DeletionDate": 1700000000,
                "Enabled": True,
                "EncryptionAlgorithms": ["SYMMETRIC_DEFAULT"],
                "MultiRegion": False,
            }
        },
    ),
    (
        "ListAliases",
        {
            "Aliases": [
                {"AliasName": "alias/a", "CreationDate": 1.7e9, "LastUpdatedDate": 1.7e9 + 1},
                {"AliasName": "alias/aws/s3"},
            ],
            "Truncated": False,
        },
    ),
    (
        "ListGrants",
        {
            "Grants": [
                {
                    "GrantId": "g",
                    "CreationDate": 1700000000.25,
                    "Constraints": {"EncryptionContextSubset": {"CreationDate": "x"}},
                }
            ]
        },
    ),
    (
        "GetKeyRotationStatus",
        {"KeyRotationEnabled": True, "NextRotationDate": 1.8e9, "RotationPeriodInDays": 365},
    ),
    (
        "ListKeyRotations",
        {"Rotations": [{"KeyId": "k", "RotationDate": 1.75e9}], "Truncated": False},
    ),
    ("ScheduleKeyDeletion", {"KeyId": "k", "DeletionDate": 1.8e9, "PendingWindowInDays": 7}),
    (
        "GetParametersForImport",
        {"ImportToken": "AA==", "PublicKey": "AQ==", "ParametersValidTo": 1.8e9},
    ),
    ("Sign", {"Signature": "MEUCIQ==", "SigningAlgorithm": "ECDSA_SHA_256"}),
    ("GenerateRandom", {"Plaintext": "AAECAw=="}),
    ("ListKeyPolicies", {"PolicyNames": ["default"], "Truncated": False}),
]


@pytest.mark.parametrize(("operation", "body"), RESPONSES)
def test_response_equals_botocore(operation: str, body: dict[str, Any]) -> None:
    ours = decode_response(json.dumps(body).encode())
    assert ours == botocore_parse(operation, body)


def test_timestamps_are_aware_utc_with_fractions_kept() -> None:
    result = decode_response(b'{"KeyMetadata": {"CreationDate": 1614905581.947}}')
    created = result["KeyMetadata"]["CreationDate"]
    assert created == datetime(2021, 3, 5, 0, 53, 1, 947000, tzinfo=UTC)
    assert created.utcoffset() == timedelta(0)


def test_blobs_are_bytes() -> None:
    result = decode_response(b'{"Plaintext": "AAFoZWxsbw==", "KeyId": "AAFoZWxsbw=="}')
    assert result == {"Plaintext": b"\x00\x01hello", "KeyId": "AAFoZWxsbw=="}


def test_empty_body_is_an_empty_result() -> None:
    assert decode_response(b"") == {}
    assert decode_response(b"{}") == {}


@pytest.mark.parametrize(
    "body", [b"not json", b"[1, 2]", b'{"Plaintext": "not base64!"}', b'{"CreationDate": true}']
)
def test_malformed_responses_raise(body: bytes) -> None:
    with pytest.raises(ResponseParseError):
        decode_response(body)


def _members_by_type() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """Every structure member name in botocore's KMS model -> its types, inputs and outputs."""
    inputs: dict[str, set[str]] = defaultdict(set)
    outputs: dict[str, set[str]] = defaultdict(set)

    def walk(shape: Shape, found: dict[str, set[str]], seen: set[str]) -> None:
        if shape.name in seen:
            return
        seen.add(shape.name)
        if shape.type_name == "structure":
            for name, member in shape.members.items():
                found[name].add(member.type_name)
                walk(member, found, seen)
        elif shape.type_name == "list":
            walk(shape.member, found, seen)

    for name in MODEL.operation_names:
        operation = MODEL.operation_model(name)
        if operation.input_shape is not None:
            walk(operation.input_shape, inputs, set())
        if operation.output_shape is not None:
            walk(operation.output_shape, outputs, set())
    return inputs, outputs


def test_member_tables_match_botocores_model() -> None:
    inputs, outputs = _members_by_type()
    assert {n for n, types in inputs.items() if len(types) > 1} == set()
    assert {n for n, types in outputs.items() if len(types) > 1} == set()
    assert {n for n, t in inputs.items() if "blob" in t} == REQUEST_BLOB_MEMBERS
    assert {n for n, t in inputs.items() if "timestamp" in t} == REQUEST_TIMESTAMP_MEMBERS
    assert {n for n, t in outputs.items() if "blob" in t} == RESPONSE_BLOB_MEMBERS
    assert {n for n, t in outputs.items() if "timestamp" in t} == RESPONSE_TIMESTAMP_MEMBERS
    maps = {n for found in (inputs, outputs) for n, t in found.items() if "map" in t}
    assert maps == MAP_MEMBERS
