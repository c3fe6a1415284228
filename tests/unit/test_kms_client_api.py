"""The client's surface matches boto3's KMS client, and its requests are what KMS expects."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import boto3  # type: ignore[import-untyped]
import botocore.session  # type: ignore[import-untyped]
import pytest
from botocore import xform_name

from clients.kms import KmsClient, errors
from clients.kms.errors import KmsClientError, PaginationError
from clients.kms.signing import Credentials, sign_request
from tests.unit.test_kms_client_fakeserver import Recorded, Reply, ScriptedServer

MODEL = botocore.session.get_session().get_service_model("kms")
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def test_every_boto3_operation_is_a_method_that_sends_its_target() -> None:
    with ScriptedServer([Reply(body=b"")]) as server:
        client = server.client()
        for operation in MODEL.operation_names:
            method = getattr(client, xform_name(operation))
            assert method.__name__ == xform_name(operation)
            method()
    targets = [request.headers["X-Amz-Target"] for request in server.requests]
    assert targets == [f"TrentService.{operation}" for operation in MODEL.operation_names]


def test_can_paginate_agrees_with_boto3() -> None:
    boto = boto3.client(
        "kms", region_name="us-east-1", aws_access_key_id="a", aws_secret_access_key="b"
    )
    client = KmsClient("http://127.0.0.1:1", "us-east-1", "a", "b")
    for operation in MODEL.operation_names:
        name = xform_name(operation)
        assert client.can_paginate(name) == boto.can_paginate(name), name


def test_call_accepts_pascal_and_snake_case() -> None:
    with ScriptedServer([Reply(body={"Plaintext": "AAE="})]) as server:
        client = server.client()
        assert client.call("GenerateRandom", NumberOfBytes=2)["Plaintext"] == b"\x00\x01"
        assert client.call("generate_random", NumberOfBytes=2)["Plaintext"] == b"\x00\x01"
        client.call("re_encrypt", CiphertextBlob=b"c", DestinationKeyId="k")
    targets = [request.headers["X-Amz-Target"] for request in server.requests]
    assert targets == ["TrentService.GenerateRandom"] * 2 + ["TrentService.ReEncrypt"]


def resign(request: Recorded, credentials: Credentials, endpoint: str) -> str:
    """The Authorization our signer computes for the headers the server actually received."""
    moment = datetime.strptime(request.headers["X-Amz-Date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    headers = {
        "Content-Type": request.headers["Content-Type"],
        "X-Amz-Target": request.headers["X-Amz-Target"],
        "Host": request.headers["Host"],
    }
    signed = sign_request(
        method=request.method,
        url=endpoint + request.path,
        headers=headers,
        body=request.body,
        credentials=credentials,
        region="eu-west-3",
        now=moment,
    )
    return signed["Authorization"]


@pytest.mark.parametrize("path", ["", "/kms/v1"])
@pytest.mark.parametrize("token", [None, "session-token"])
def test_request_on_the_wire(path: str, token: str | None) -> None:
    with ScriptedServer([Reply(body={"KeyId": "arn", "CiphertextBlob": "AQI="})]) as server:
        client = KmsClient(
            server.endpoint + path,
            region_name="eu-west-3",
            aws_access_key_id="AKIDEXAMPLE",
            aws_secret_access_key=SECRET,
            aws_session_token=token,
        )
        result = client.encrypt(
            KeyId="alias/a", Plaintext=b"\x00\x01hello", EncryptionContext={"a": "b"}
        )
    (request,) = server.requests
    assert request.path == (path or "/")
    assert request.headers["Content-Type"] == "application/x-amz-json-1.1"
    assert request.headers["X-Amz-Target"] == "TrentService.Encrypt"
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"
    assert request.headers.get("X-Amz-Security-Token") == token
    assert request.json() == {
        "KeyId": "alias/a",
        "Plaintext": "AAFoZWxsbw==",
        "EncryptionContext": {"a": "b"},
    }
    authorization = request.headers["Authorization"]
    assert "/eu-west-3/kms/aws4_request" in authorization
    credentials = Credentials("AKIDEXAMPLE", SECRET, token)
    assert authorization == resign(request, credentials, server.endpoint)
    assert result["CiphertextBlob"] == b"\x01\x02"


def test_unsigned_client_sends_no_authorization() -> None:
    with ScriptedServer([Reply(body={})]) as server:
        KmsClient(server.endpoint, region_name="us-east-1", unsigned=True).list_keys()
    (request,) = server.requests
    assert "Authorization" not in request.headers
    assert request.headers["Host"] == f"127.0.0.1:{server.port}"


def test_response_metadata_has_boto3s_keys() -> None:
    with ScriptedServer([Reply(body=b"")]) as server:
        result = server.client().enable_key(KeyId="k")
    assert set(result) == {"ResponseMetadata"}
    metadata = result["ResponseMetadata"]
    assert set(metadata) == {"RequestId", "HTTPStatusCode", "HTTPHeaders", "RetryAttempts"}
    assert metadata["HTTPStatusCode"] == 200
    assert metadata["RequestId"] == metadata["HTTPHeaders"]["x-amzn-requestid"] == "req-1"


def test_error_from_the_server_carries_everything() -> None:
    body = {"__type": "NotFoundException", "message": "Key 'arn:x' does not exist"}
    with ScriptedServer([Reply(status=400, body=body)]) as server:
        client = server.client()
        with pytest.raises(client.exceptions.NotFoundException) as caught:
            client.describe_key(KeyId="x")
    error = caught.value
    assert type(error) is errors.NotFoundException
    assert client.exceptions.ClientError is KmsClientError
    assert (error.code, error.message, error.request_id, error.status) == (
        "NotFoundException",
        "Key 'arn:x' does not exist",
        "req-1",
        400,
    )
    assert error.operation_name == "DescribeKey"
    assert error.response["Error"] == {"Code": "NotFoundException", "Message": body["message"]}


def test_unknown_error_from_the_server_becomes_a_reachable_class() -> None:
    with ScriptedServer(
        [Reply(status=400, body={"__type": "FreshFromTheFutureException"})]
    ) as server:
        client = server.client()
        with pytest.raises(KmsClientError) as caught:
            client.list_keys()
    assert type(caught.value) is client.exceptions.FreshFromTheFutureException
    assert type(caught.value) is errors.FreshFromTheFutureException


def test_parameters_that_cannot_be_serialised_fail_before_sending() -> None:
    with ScriptedServer([Reply(body={})]) as server, pytest.raises(errors.ParamSerializationError):
        server.client().encrypt(KeyId="k", Plaintext=object())
    assert server.requests == []


# --- paginators ----------------------------------------------------------------------------
def pages(*pages: dict[str, Any]) -> list[Reply]:
    return [Reply(body=page) for page in pages]


THREE_PAGES = pages(
    {"Keys": [{"KeyId": "1"}, {"KeyId": "2"}], "NextMarker": "m1", "Truncated": True},
    {"Keys": [{"KeyId": "3"}, {"KeyId": "4"}], "NextMarker": "m2", "Truncated": True},
    {"Keys": [{"KeyId": "5"}], "Truncated": False},
)


def test_paginator_follows_markers_while_truncated() -> None:
    with ScriptedServer(THREE_PAGES) as server:
        paginator = server.client().get_paginator("list_keys")
        result = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    assert [len(page["Keys"]) for page in result] == [2, 2, 1]
    bodies = [request.json() for request in server.requests]
    assert bodies == [{"Limit": 2}, {"Limit": 2, "Marker": "m1"}, {"Limit": 2, "Marker": "m2"}]


def test_paginator_stops_when_not_truncated_even_with_a_marker() -> None:
    script = pages({"Aliases": [{"AliasName": "alias/a"}], "NextMarker": "m", "Truncated": False})
    with ScriptedServer(script) as server:
        result = list(server.client().get_paginator("ListAliases").paginate(KeyId="k"))
    assert len(result) == 1
    assert [request.json() for request in server.requests] == [{"KeyId": "k"}]


def test_paginator_max_items_starting_token_and_full_result() -> None:
    with ScriptedServer(THREE_PAGES) as server:
        paginator = server.client().get_paginator("list_keys")
        limited = paginator.paginate(PaginationConfig={"MaxItems": 3, "StartingToken": "m0"})
        full = limited.build_full_result()
    assert full == {"Keys": [{"KeyId": "1"}, {"KeyId": "2"}, {"KeyId": "3"}]}
    assert [request.json() for request in server.requests] == [{"Marker": "m0"}, {"Marker": "m1"}]


def test_paginator_refuses_to_loop_on_a_repeated_marker() -> None:
    script = pages({"Keys": [], "NextMarker": "same", "Truncated": True})
    with ScriptedServer(script) as server, pytest.raises(PaginationError):
        list(server.client().get_paginator("list_keys").paginate())
    assert len(server.requests) == 2


def test_non_list_operations_have_no_paginator() -> None:
    client = KmsClient("http://127.0.0.1:1", "us-east-1", "a", "b")
    with pytest.raises(ValueError, match="cannot be paginated"):
        client.get_paginator("encrypt")


def test_context_manager_closes_connections() -> None:
    with ScriptedServer([Reply(body={})]) as server:
        with server.client() as client:
            client.list_keys()
        client.list_keys()  # reconnects after close
    assert len(server.connections) == 2


def test_meta_mirrors_boto3() -> None:
    client = KmsClient("http://127.0.0.1:1/", "ca-central-1", "a", "b")
    assert (client.meta.region_name, client.meta.endpoint_url, client.meta.service_name) == (
        "ca-central-1",
        "http://127.0.0.1:1",
        "kms",
    )
    assert "region_name='ca-central-1'" in repr(client)
