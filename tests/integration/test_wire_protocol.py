"""The AWS JSON 1.1 wire protocol, over raw HTTP and through boto3 (docs/aws-behaviours.md,
"Wire protocol").

Raw requests carry an unsigned ``Authorization`` header naming a fresh 12-digit access key:
in open auth mode that is the caller's account, so these tests never see other tests' keys.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.server import RunningServer
from tests.support.wire import (
    CONTENT_TYPE,
    Caller,
    KmsClient,
    LogWatch,
    assert_kms_error,
    checked_healthz,
    kms_client,
    new_account_id,
    open_auth,
    raw_request,
)

MAX_BODY = 1024 * 1024
POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "kms:*", "Resource": "*"}
        ],
    }
)


@pytest.fixture()
def caller(kms_server: RunningServer) -> Caller:
    return Caller(kms_server.port)


@pytest.fixture(scope="module", autouse=True)
def no_unexpected_errors(kms_server: RunningServer) -> Iterator[None]:
    """However bad the input, nothing here may reach the catch-all handler."""
    watch = LogWatch(kms_server.log_path)
    yield
    watch.assert_no_unexpected_errors()


# --- paths and framing -----------------------------------------------------------------------
@pytest.mark.parametrize("path", ["/", "/kms/v1", "/a/b/c/"])
def test_post_on_any_path(caller: Caller, path: str) -> None:
    response = caller.call("ListKeys", path=path)
    assert response.status == 200
    assert response.json() == {"Keys": [], "Truncated": False}


def test_boto3_with_a_path_in_the_endpoint_url(kms_server: RunningServer) -> None:
    client = kms_client(kms_server.endpoint + "/kms/v1")
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["KeyId"] == key_id
    with pytest.raises(client.exceptions.NotFoundException):
        client.describe_key(KeyId=str(uuid.uuid4()))


def test_every_answer_has_content_type_and_a_unique_request_id(caller: Caller) -> None:
    """Successes, empty-bodied successes and every kind of error."""
    key_id = caller.create_key()
    responses = [
        caller.call("ListKeys"),
        caller.call("EnableKey", {"KeyId": key_id}),
        caller.call("DescribeKey", {"KeyId": str(uuid.uuid4())}),
        caller.call("DescribeKey", b"{oops"),
        caller.call("DescribeKey", {}),
        caller.call("NoSuchOperation"),
        caller.call("Sign", {"KeyId": key_id}),
        caller.call("Decrypt", {"CiphertextBlob": "AAAAAAAAAAAAAAAAAAAAAAAA"}),
        caller.call("ListKeys", method="GET"),
    ]
    request_ids = []
    for response in responses:
        assert response.header("Content-Type") == CONTENT_TYPE, response
        request_id = response.header("x-amzn-RequestId")
        assert request_id is not None
        uuid.UUID(request_id)
        request_ids.append(request_id)
    assert len(set(request_ids)) == len(request_ids)


def test_boto3_sees_the_request_id(kms: KmsClient) -> None:
    response = kms.list_keys()
    metadata = response["ResponseMetadata"]
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"]
    with pytest.raises(ClientError) as caught:
        kms.describe_key(KeyId=str(uuid.uuid4()))
    assert caught.value.response["ResponseMetadata"]["RequestId"]


def test_operations_without_output_have_an_empty_body(caller: Caller) -> None:
    key_id = caller.create_key()
    other = caller.create_key()
    calls: list[tuple[str, dict[str, Any]]] = [
        ("CreateAlias", {"AliasName": "alias/empty-body", "TargetKeyId": key_id}),
        ("UpdateAlias", {"AliasName": "alias/empty-body", "TargetKeyId": other}),
        ("DeleteAlias", {"AliasName": "alias/empty-body"}),
        ("DisableKey", {"KeyId": key_id}),
        ("EnableKey", {"KeyId": key_id}),
        ("UpdateKeyDescription", {"KeyId": key_id, "Description": "d"}),
        ("TagResource", {"KeyId": key_id, "Tags": [{"TagKey": "k", "TagValue": "v"}]}),
        ("UntagResource", {"KeyId": key_id, "TagKeys": ["k"]}),
        ("EnableKeyRotation", {"KeyId": key_id}),
        ("DisableKeyRotation", {"KeyId": key_id}),
        ("PutKeyPolicy", {"KeyId": key_id, "PolicyName": "default", "Policy": POLICY}),
    ]
    for operation, body in calls:
        response = caller.call(operation, body)
        assert response.status == 200, (operation, response.body)
        assert response.body == b"", operation
        assert response.header("Content-Length") == "0", operation
        assert response.header("Content-Type") == CONTENT_TYPE


def test_application_json_content_type_is_accepted(caller: Caller) -> None:
    response = caller.call("ListKeys", headers={"Content-Type": "application/json"})
    assert response.status == 200


def test_empty_body_means_no_members(caller: Caller) -> None:
    assert caller.call("ListKeys", b"").status == 200
    body = assert_kms_error(caller.call("DescribeKey", b""), "ValidationException")
    assert "Value null at 'keyId'" in body["message"]


# --- error shape ---------------------------------------------------------------------------
def test_client_error_shape(caller: Caller) -> None:
    missing = str(uuid.uuid4())
    body = assert_kms_error(caller.call("DescribeKey", {"KeyId": missing}), "NotFoundException")
    assert body["message"] == (
        f"Key 'arn:aws:kms:us-east-1:{caller.account_id}:key/{missing}' does not exist"
    )


def test_invalid_ciphertext_has_no_message(caller: Caller, kms: KmsClient) -> None:
    response = caller.call("Decrypt", {"CiphertextBlob": base64.b64encode(b"x" * 80).decode()})
    body = assert_kms_error(response, "InvalidCiphertextException")
    assert body == {"__type": "InvalidCiphertextException"}
    with pytest.raises(kms.exceptions.InvalidCiphertextException) as caught:
        kms.decrypt(CiphertextBlob=b"y" * 80)
    assert caught.value.response["Error"]["Message"] == ""


# --- SerializationException ------------------------------------------------------------------
KEY = "1234abcd-12ab-34cd-56ef-1234567890ab"
SERIALIZATION_CASES: list[tuple[str, bytes]] = [
    ("ListKeys", b"{not json"),
    ("ListKeys", b'{"Limit": 1,}'),
    ("ListKeys", b"[]"),
    ("ListKeys", b'[{"Limit": 1}]'),
    ("ListKeys", b"null"),
    ("ListKeys", b'"ListKeys"'),
    ("ListKeys", b"42"),
    ("ListKeys", b"\xff\xfe{\x00}\x00"),
    ("ListKeys", b'{"Marker": "\xed\xa0\x80"}'),  # a UTF-8-encoded surrogate
    ("ListKeys", b'{"a":' * 50_000),
    ("ListKeys", b"[" * 50_000),
    ("DescribeKey", b'{"KeyId": 5}'),
    ("DescribeKey", b'{"KeyId": {"id": "x"}}'),
    ("Encrypt", json.dumps({"KeyId": KEY, "Plaintext": "not base64!"}).encode()),
    (
        "Encrypt",
        json.dumps({"KeyId": KEY, "Plaintext": "QUFB", "EncryptionContext": {"a": 1}}).encode(),
    ),
    ("GenerateRandom", b'{"NumberOfBytes": "3"}'),
    ("GenerateRandom", b'{"NumberOfBytes": 2.5}'),
    ("GenerateRandom", b'{"NumberOfBytes": false}'),
    ("CreateKey", b'{"Tags": {}}'),
    ("CreateKey", b'{"Tags": [1]}'),
    ("CreateKey", b'{"Tags": ["k=v"]}'),
    ("CreateKey", b'{"MultiRegion": "yes"}'),
    ("ListKeys", b'{"Limit": NaN}'),
    ("ListKeys", b'{"Limit": 1e999}'),
]


@pytest.mark.parametrize(("operation", "body"), SERIALIZATION_CASES)
def test_serialization_exception(caller: Caller, operation: str, body: bytes) -> None:
    """Malformed JSON, a non-object body, or a member of the wrong JSON type."""
    payload = assert_kms_error(caller.call(operation, body), "SerializationException")
    assert payload.get("message")


@pytest.mark.parametrize(
    "text",
    [
        '{"Description": "\\ud800"}',
        '{"Tags": [{"TagKey": "\\udfff", "TagValue": "v"}]}',
        '{"Description": "a\\ud83d"}',
    ],
)
def test_lone_surrogate_escapes_are_serialization_errors(caller: Caller, text: str) -> None:
    """A lone UTF-16 surrogate cannot be stored or bound into a context: 400, not a 500."""
    assert_kms_error(caller.call("CreateKey", text.encode()), "SerializationException")


def test_lone_surrogate_in_encryption_context(caller: Caller) -> None:
    key_id = caller.create_key()
    text = '{"KeyId": "' + key_id + '", "Plaintext": "QUFB", "EncryptionContext": {"k": "\\udc00"}}'
    assert_kms_error(caller.call("Encrypt", text.encode()), "SerializationException")


def test_surrogate_pairs_are_fine(caller: Caller) -> None:
    """An escaped emoji (how ensure_ascii encoders write it) is valid and round-trips."""
    key_id = caller.create_key()
    context = '{"k": "\\ud83d\\ude00"}'
    text = '{"KeyId": "' + key_id + '", "Plaintext": "QUFB", "EncryptionContext": ' + context + "}"
    encrypted = caller.ok("Encrypt", text.encode())
    decrypted = caller.ok(
        "Decrypt",
        {"CiphertextBlob": encrypted["CiphertextBlob"], "EncryptionContext": {"k": "\U0001f600"}},
    )
    assert decrypted["Plaintext"] == "QUFB"


# --- operations that are not there -----------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    [
        None,
        "TrentService.NoSuchOperation",
        "TrentService.",
        "DynamoDB_20120810.ListTables",
        "ListKeys",
        "TrentService.listkeys",
    ],
)
def test_unknown_operation(caller: Caller, target: str | None) -> None:
    headers = {} if target is None else {"X-Amz-Target": target}
    response = caller.call(None, headers=headers)
    assert_kms_error(response, "UnknownOperationException")


@pytest.mark.parametrize(
    "operation", ["GetKeyLastUsage", "Decapsulate", "Encapsulate"]
)
def test_known_but_unimplemented_operation(caller: Caller, operation: str) -> None:
    body = assert_kms_error(caller.call(operation, {"KeyId": KEY}), "UnsupportedOperationException")
    assert operation in body["message"]


def test_unimplemented_operation_through_boto3(kms: KmsClient) -> None:
    with pytest.raises(kms.exceptions.UnsupportedOperationException):
        kms.get_key_last_usage(KeyId=KEY)


# --- body cap ------------------------------------------------------------------------------
def _padded_list_keys(size: int) -> bytes:
    prefix, suffix = b'{"Limit": 5, "Padding": "', b'"}'
    return prefix + b"p" * (size - len(prefix) - len(suffix)) + suffix


def test_body_at_the_cap_is_accepted(caller: Caller) -> None:
    body = _padded_list_keys(MAX_BODY)
    assert len(body) == MAX_BODY
    assert caller.call("ListKeys", body).status == 200


def test_body_over_the_cap_is_an_aws_shaped_413(caller: Caller) -> None:
    response = caller.call("ListKeys", _padded_list_keys(MAX_BODY + 1))
    body = assert_kms_error(response, "RequestEntityTooLargeException", status=413)
    assert str(MAX_BODY) in body["message"]


def _send_chunked(port: int, payload: bytes) -> tuple[int, dict[str, Any], bytes]:
    """POST ``payload`` with chunked transfer encoding; returns status, JSON body, raw."""
    head = (
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Amz-Target: TrentService.ListKeys\r\n"
        f"Content-Type: {CONTENT_TYPE}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        try:
            for start in range(0, len(payload), 65536):
                chunk = payload[start : start + 65536]
                sock.sendall(b"%x\r\n%b\r\n" % (len(chunk), chunk))
            sock.sendall(b"0\r\n\r\n")
        except OSError:
            pass  # the server may answer and close before reading everything
        answer = b""
        while data := sock.recv(65536):
            answer += data
    status_line, _, rest = answer.partition(b"\r\n")
    body = rest.partition(b"\r\n\r\n")[2]
    return int(status_line.split()[1]), json.loads(body), answer


def test_chunked_body_under_the_cap_is_read(kms_server: RunningServer) -> None:
    status, body, _ = _send_chunked(kms_server.port, b'{"Limit": 2}')
    assert status == 200
    assert "Keys" in body


def test_chunked_body_over_the_cap_is_refused(kms_server: RunningServer) -> None:
    """No Content-Length to check up front: the cap still holds while reading (werkzeug
    alone would silently cut the body at the cap)."""
    status, body, answer = _send_chunked(kms_server.port, _padded_list_keys(3 * MAX_BODY))
    assert status == 413, answer[:300]
    assert body["__type"] == "RequestEntityTooLargeException"
    assert b"Traceback" not in answer


def test_boto3_over_the_cap(kms: KmsClient) -> None:
    """botocore does not check maximums; the server's answer is a ClientError, not a crash."""
    with pytest.raises(ClientError) as caught:
        kms.list_keys(Marker="m" * (MAX_BODY + 10))
    assert caught.value.response["Error"]["Code"] == "RequestEntityTooLargeException"
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 413


# --- other methods and paths -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/"),
        ("GET", "/nothing/here"),
        ("PUT", "/"),
        ("DELETE", "/kms"),
        ("GET", "/favicon.ico"),
    ],
)
def test_other_methods_get_a_json_error(caller: Caller, method: str, path: str) -> None:
    response = caller.call("ListKeys", b"", method=method, path=path)
    assert 400 <= response.status < 500
    assert response.header("Content-Type") == CONTENT_TYPE
    assert b"Traceback" not in response.body and b"<html" not in response.body.lower()
    assert "__type" in response.json()
    assert response.header("X-Amzn-ErrorType") == response.json()["__type"]


@pytest.mark.parametrize(("method", "path"), [("GET", "/nothing/here"), ("DELETE", "/x/y")])
def test_requests_that_are_not_kms_never_crash(
    kms_server: RunningServer, method: str, path: str
) -> None:
    """Without X-Amz-Target and a JSON 1.1 body these go to the S3 side (or, with --no-s3,
    get a KMS JSON error): never a 500, an HTML page or a stack trace."""
    response = raw_request(kms_server.port, b"", method=method, path=path, headers={})
    assert 400 <= response.status < 500
    assert b"Traceback" not in response.body and b"<html" not in response.body.lower()
    assert response.header("x-amzn-RequestId") or response.header("x-amz-request-id")


def test_healthz(kms_server: RunningServer) -> None:
    checked_healthz(kms_server)


# --- member handling -------------------------------------------------------------------------
def test_unknown_members_are_ignored(caller: Caller) -> None:
    key_id = caller.create_key()
    encrypted = caller.ok(
        "Encrypt",
        {
            "KeyId": key_id,
            "Plaintext": "aGVsbG8=",
            "FutureMember": {"nested": [1, 2]},
            "DryRunModifiers": ["SOMETHING_NEW"],
        },
    )
    assert (
        caller.ok("Decrypt", {"CiphertextBlob": encrypted["CiphertextBlob"], "X": 1})["Plaintext"]
        == "aGVsbG8="
    )


def test_nulls_are_treated_as_absent(caller: Caller) -> None:
    created = caller.ok("CreateKey", {"Description": None, "Tags": None, "Policy": None})
    key_id = created["KeyMetadata"]["KeyId"]
    assert created["KeyMetadata"]["Description"] == ""
    assert caller.ok("ListKeys", {"Limit": None, "Marker": None})["Keys"][0]["KeyId"] == key_id
    encrypted = caller.ok(
        "Encrypt", {"KeyId": key_id, "Plaintext": "QUFB", "EncryptionContext": None}
    )
    decrypted = caller.ok("Decrypt", {"CiphertextBlob": encrypted["CiphertextBlob"], "KeyId": None})
    assert decrypted["Plaintext"] == "QUFB"
    body = assert_kms_error(caller.call("DescribeKey", {"KeyId": None}), "ValidationException")
    assert body["message"] == (
        "1 validation error detected: Value null at 'keyId' failed to satisfy constraint: "
        "Member must not be null"
    )


def _walk(value: Any) -> list[Any]:
    if isinstance(value, dict):
        return [value, *(item for v in value.values() for item in _walk(v))]
    if isinstance(value, list):
        return [value, *(item for v in value for item in _walk(v))]
    return [value]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def test_timestamps_are_json_numbers_and_nothing_is_null(caller: Caller) -> None:
    key_id = caller.create_key()
    caller.ok("CreateAlias", {"AliasName": "alias/timestamps", "TargetKeyId": key_id})
    caller.ok("EnableKeyRotation", {"KeyId": key_id})
    caller.ok("RotateKeyOnDemand", {"KeyId": key_id})
    described = caller.ok("DescribeKey", {"KeyId": key_id})["KeyMetadata"]
    assert _is_number(described["CreationDate"])
    status = caller.ok("GetKeyRotationStatus", {"KeyId": key_id})
    assert _is_number(status["NextRotationDate"])
    rotations = caller.ok("ListKeyRotations", {"KeyId": key_id})["Rotations"]
    assert rotations and all(_is_number(r["RotationDate"]) for r in rotations)
    aliases = caller.ok("ListAliases", {"KeyId": key_id})["Aliases"]
    assert _is_number(aliases[0]["CreationDate"]) and _is_number(aliases[0]["LastUpdatedDate"])
    scheduled = caller.ok("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": 7})
    assert _is_number(scheduled["DeletionDate"])
    assert _is_number(caller.ok("DescribeKey", {"KeyId": key_id})["KeyMetadata"]["DeletionDate"])
    for document in (described, status, rotations, aliases, scheduled):
        assert None not in _walk(document)


def test_blobs_are_padded_standard_base64(caller: Caller) -> None:
    key_id = caller.create_key()
    for size in (1, 2, 3, 31, 32, 33):
        random = caller.ok("GenerateRandom", {"NumberOfBytes": size})["Plaintext"]
        assert len(random) % 4 == 0
        assert len(base64.b64decode(random, validate=True)) == size
    data_key = caller.ok("GenerateDataKey", {"KeyId": key_id, "NumberOfBytes": 17})
    for member in ("Plaintext", "CiphertextBlob"):
        assert len(data_key[member]) % 4 == 0
        base64.b64decode(data_key[member], validate=True)
    assert len(base64.b64decode(data_key["Plaintext"])) == 17


def test_response_key_ids_follow_aws(caller: Caller) -> None:
    """Crypto responses name the key by ARN; KeyMetadata and list entries by bare id."""
    key_id = caller.create_key()
    arn = f"arn:aws:kms:us-east-1:{caller.account_id}:key/{key_id}"
    caller.ok("CreateAlias", {"AliasName": "alias/ids", "TargetKeyId": key_id})
    encrypted = caller.ok("Encrypt", {"KeyId": "alias/ids", "Plaintext": "QUFB"})
    assert encrypted["KeyId"] == arn
    assert encrypted["EncryptionAlgorithm"] == "SYMMETRIC_DEFAULT"
    assert caller.ok("Decrypt", {"CiphertextBlob": encrypted["CiphertextBlob"]})["KeyId"] == arn
    metadata = caller.ok("DescribeKey", {"KeyId": arn})["KeyMetadata"]
    assert metadata["KeyId"] == key_id and metadata["Arn"] == arn
    alias = caller.ok("ListAliases", {"KeyId": key_id})["Aliases"][0]
    assert alias["TargetKeyId"] == key_id


def test_keep_alive_connection_survives_errors(kms_server: RunningServer) -> None:
    """botocore reuses connections: an error answer must leave the connection usable."""
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", kms_server.port, timeout=10)
    headers = {"Content-Type": CONTENT_TYPE, **open_auth(new_account_id())}
    try:
        for target, body in [
            ("TrentService.ListKeys", b"{bad"),
            ("TrentService.Nope", b"{}"),
            ("TrentService.DescribeKey", b"{}"),
            ("TrentService.ListKeys", b"{}"),
        ]:
            connection.request("POST", "/", body=body, headers={**headers, "X-Amz-Target": target})
            response = connection.getresponse()
            response.read()
        assert response.status == 200
    finally:
        connection.close()
