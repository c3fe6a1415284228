"""Error responses map to one class per AWS error name, read the way botocore reads them."""

from __future__ import annotations

import json
import pickle
from typing import Any

import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore import parsers
from botocore.exceptions import ClientError  # type: ignore[import-untyped]

from clients.kms import KmsClient, errors
from clients.kms.errors import KmsClientError, error_class
from clients.kms.protocol import error_from_response, parse_error

MODEL = botocore.session.get_session().get_service_model("kms")
ARN = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"

# (status, headers, body) as real KMS / the Coral front end sends them (docs/aws-behaviours.md,
# "Wire protocol" and "Authentication"), and what the error must become.
REAL_ERRORS: list[tuple[int, dict[str, str], bytes, str, str]] = [
    (
        400,
        {},
        json.dumps(
            {"__type": "NotFoundException", "message": f"Key '{ARN}' does not exist"}
        ).encode(),
        "NotFoundException",
        f"Key '{ARN}' does not exist",
    ),
    (400, {}, b'{"__type":"InvalidCiphertextException"}', "InvalidCiphertextException", ""),
    (
        400,
        {},
        json.dumps({"__type": "DisabledException", "message": f"{ARN} is disabled."}).encode(),
        "DisabledException",
        f"{ARN} is disabled.",
    ),
    (
        400,
        {},
        b'{"__type":"com.amazonaws.kms#KMSInvalidStateException","message":"pending deletion"}',
        "KMSInvalidStateException",
        "pending deletion",
    ),
    (
        400,
        {},
        b'{"__type":"com.amazon.coral.validate#ValidationException","message":"1 validation'
        b" error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint\"}",
        "ValidationException",
        "1 validation error detected: Value '0' at 'numberOfBytes' failed to satisfy constraint",
    ),
    (
        400,
        {},
        b'{"__type":"com.amazon.coral.service#SerializationException","Message":"bad json"}',
        "SerializationException",
        "bad json",
    ),
    (
        400,
        {"X-Amzn-ErrorType": "IncorrectKeyException:http://internal.amazon.com/"},
        b'{"__type":"IncorrectKeyException:http://internal.amazon.com/coral","message":"m"}',
        "IncorrectKeyException",
        "m",
    ),
    (
        400,
        {},
        b'{"__type":"InvalidSignatureException","message":"The request signature we calculated'
        b' does not match the signature you provided."}',
        "InvalidSignatureException",
        "The request signature we calculated does not match the signature you provided.",
    ),
    (
        400,
        {},
        b'{"__type":"ThrottlingException","message":"You have exceeded the rate"}',
        "ThrottlingException",
        "You have exceeded the rate",
    ),
    (
        500,
        {},
        b'{"__type":"KMSInternalException","message":"oops"}',
        "KMSInternalException",
        "oops",
    ),
]


@pytest.mark.parametrize(("status", "headers", "body", "code", "message"), REAL_ERRORS)
def test_real_error_bodies_map_to_their_class(
    status: int, headers: dict[str, str], body: bytes, code: str, message: str
) -> None:
    error = error_from_response(
        status=status,
        reason="Bad Request",
        headers={**headers, "x-amzn-RequestId": "rid-1"},
        body=body,
        operation_name="Decrypt",
        request_id="rid-1",
        retry_attempts=0,
    )
    assert type(error) is getattr(errors, code)
    assert isinstance(error, KmsClientError)
    assert (error.code, error.message, error.request_id, error.status) == (
        code,
        message,
        "rid-1",
        status,
    )


@pytest.mark.parametrize(("status", "headers", "body", "code", "message"), REAL_ERRORS)
def test_code_and_message_equal_botocores_reading(
    status: int, headers: dict[str, str], body: bytes, code: str, message: str
) -> None:
    parser = parsers.create_parser("json")
    raw = {"status_code": status, "headers": headers, "body": body}
    botocore_error = parser.parse(raw, None)["Error"]
    details = parse_error(status, "Bad Request", headers, body)
    assert (details.code, details.message) == (botocore_error["Code"], botocore_error["Message"])


def test_header_only_error_type_is_used_when_the_body_has_none() -> None:
    # botocore would say "400" here; the other SDKs read the header, and so do we.
    details = parse_error(400, "Bad Request", {"X-Amzn-ErrorType": "NotFoundException"}, b"{}")
    assert details.code == "NotFoundException"


def test_html_gateway_error_uses_the_status_and_reason() -> None:
    error = error_from_response(
        status=502,
        reason="Bad Gateway",
        headers={},
        body=b"<html><body>502 Bad Gateway</body></html>",
        operation_name="Encrypt",
        request_id=None,
        retry_attempts=0,
    )
    assert type(error) is KmsClientError
    assert (error.code, error.message, error.status) == ("502", "Bad Gateway", 502)


def test_unknown_error_names_get_one_cached_class() -> None:
    first = error_class("BrandNewKmsException")
    assert issubclass(first, KmsClientError)
    assert first is error_class("BrandNewKmsException")
    assert errors.BrandNewKmsException is first
    client = KmsClient("http://127.0.0.1:1", "us-east-1", "a", "b")
    assert client.exceptions.BrandNewKmsException is first
    assert "BrandNewKmsException" not in errors.PREDEFINED_ERROR_NAMES


def test_names_never_seen_are_attribute_errors() -> None:
    client = KmsClient("http://127.0.0.1:1", "us-east-1", "a", "b")
    with pytest.raises(AttributeError):
        _ = errors.NeverSentByAnyServerException
    with pytest.raises(AttributeError):
        _ = client.exceptions.NeverSentByAnyServerException


def test_every_modeled_kms_error_is_predefined() -> None:
    modeled = {shape.name for shape in MODEL.error_shapes}
    assert len(modeled) > 40
    assert modeled <= errors.PREDEFINED_ERROR_NAMES
    front_end = {
        "ValidationException",
        "AccessDeniedException",
        "ThrottlingException",
        "UnknownOperationException",
        "SerializationException",
        "MissingAuthenticationTokenException",
        "IncompleteSignatureException",
        "InvalidSignatureException",
        "UnrecognizedClientException",
        "ExpiredTokenException",
    }
    assert front_end <= errors.PREDEFINED_ERROR_NAMES
    for name in modeled | front_end:
        cls = getattr(errors, name)
        assert cls.__name__ == name and issubclass(cls, KmsClientError)


def _error(code: str = "NotFoundException", message: str = "gone", retries: int = 0) -> Any:
    return error_class(code)(
        code,
        message,
        request_id="rid-9",
        status=400,
        operation_name="DescribeKey",
        retry_attempts=retries,
        headers={"x-amzn-requestid": "rid-9"},
    )


def test_message_and_response_match_botocore_client_error() -> None:
    ours = _error()
    boto_response: Any = {
        "Error": {"Code": "NotFoundException", "Message": "gone"},
        "ResponseMetadata": {
            "RequestId": "rid-9",
            "HTTPStatusCode": 400,
            "HTTPHeaders": {"x-amzn-requestid": "rid-9"},
            "RetryAttempts": 0,
        },
        "message": "gone",
    }
    theirs = ClientError(boto_response, "DescribeKey")
    assert str(ours) == str(theirs)
    assert ours.response == theirs.response
    retried = _error(retries=2)
    assert str(retried) == str(ours)  # retries alone do not change the message
    retried.mark_max_attempts_reached()
    metadata = {**boto_response["ResponseMetadata"], "RetryAttempts": 2, "MaxAttemptsReached": True}
    exhausted = ClientError({**boto_response, "ResponseMetadata": metadata}, "DescribeKey")
    assert str(retried) == str(exhausted)
    assert "(reached max retries: 2)" in str(retried)
    assert retried.response == exhausted.response


def test_errors_survive_pickling() -> None:
    error = _error("KMSInvalidStateException", "pending", retries=1)
    error.mark_max_attempts_reached()
    copy = pickle.loads(pickle.dumps(error))
    assert str(copy) == str(error)
    assert type(copy) is errors.KMSInvalidStateException
    assert (copy.code, copy.message, copy.request_id, copy.retry_attempts) == (
        "KMSInvalidStateException",
        "pending",
        "rid-9",
        1,
    )
