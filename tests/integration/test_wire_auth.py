"""Authentication, accounts and regions (docs/aws-behaviours.md, "Authentication").

A module-scoped server runs with ``MOCK_KMS_AUTH=sigv4`` and a credentials file; the open-mode
tests use the session server, where a 12-digit access key id is the caller's account.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.exceptions import ClientError

from tests.support.server import RunningServer, start_server
from tests.support.wire import (
    Caller,
    KmsClient,
    LogWatch,
    assert_kms_error,
    error_code,
    kms_client,
    new_account_id,
    raw_request,
    signed_headers,
)

ALICE = {"access_key_id": "AKIDALICE0000001", "secret_access_key": "alice/Secret+Key0"}
ALICE_ACCOUNT = "444455556666"
BOB = {"access_key_id": "AKIDBOB000000001", "secret_access_key": "bob-secret"}
BOB_ACCOUNT = "111122223333"  # the server's default account
CAROL = {
    "access_key_id": "ASIACAROL0000001",
    "secret_access_key": "carol-secret",
    "session_token": "FwoGZXIvYXdzEJr//carol+token=",
}
CAROL_ACCOUNT = "777788889999"
CREDENTIALS = f"""\
[alice]
aws_access_key_id = {ALICE["access_key_id"]}
aws_secret_access_key = {ALICE["secret_access_key"]}
aws_account_id = {ALICE_ACCOUNT}
region = us-west-2

[bob]
aws_access_key_id = {BOB["access_key_id"]}
aws_secret_access_key = {BOB["secret_access_key"]}

[carol]
aws_access_key_id = {CAROL["access_key_id"]}
aws_secret_access_key = {CAROL["secret_access_key"]}
aws_session_token = {CAROL["session_token"]}
aws_account_id = {CAROL_ACCOUNT}
"""
MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)
BASIC_DATE = r"\d{8}T\d{6}Z"


@pytest.fixture(scope="module")
def sigv4_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    root = tmp_path_factory.mktemp("sigv4")
    credentials = root / "credentials"
    credentials.write_text(CREDENTIALS)
    server = start_server(
        root / "data",
        workers=2,
        env={"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
    )
    watch = LogWatch(server.log_path)
    try:
        yield server
        watch.assert_no_unexpected_errors()
        # Secrets and session tokens never reach the log.
        log = server.log()
        for secret in (
            ALICE["secret_access_key"],
            BOB["secret_access_key"],
            CAROL["session_token"],
        ):
            assert secret not in log
    finally:
        server.stop()


def client_for(server: RunningServer, who: dict[str, str], **kwargs: str) -> KmsClient:
    return kms_client(server.endpoint, **{**who, **kwargs})


def client_error(call: object, **kwargs: object) -> ClientError:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)  # type: ignore[operator]
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    return caught.value


# --- sigv4 mode --------------------------------------------------------------------------------
def test_right_secret_works(sigv4_server: RunningServer) -> None:
    client = client_for(sigv4_server, ALICE, region="eu-west-1")
    metadata = client.create_key(Description="alice's")["KeyMetadata"]
    assert metadata["AWSAccountId"] == ALICE_ACCOUNT
    assert metadata["Arn"] == f"arn:aws:kms:eu-west-1:{ALICE_ACCOUNT}:key/{metadata['KeyId']}"
    blob = client.encrypt(KeyId=metadata["KeyId"], Plaintext=b"secret")["CiphertextBlob"]
    assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"secret"


def test_default_account_for_a_profile_without_one(sigv4_server: RunningServer) -> None:
    metadata = client_for(sigv4_server, BOB).create_key()["KeyMetadata"]
    assert metadata["AWSAccountId"] == BOB_ACCOUNT


def test_wrong_secret(sigv4_server: RunningServer) -> None:
    client = client_for(sigv4_server, ALICE, secret_access_key="not-alice-secret")
    error = client_error(client.list_keys)
    assert error_code(error) == "InvalidSignatureException"
    message = error.response["Error"]["Message"]
    assert message.startswith(MISMATCH)
    assert "The Canonical String for this request should have been" in message
    assert "not-alice-secret" not in message and ALICE["secret_access_key"] not in message


def test_unknown_access_key(sigv4_server: RunningServer) -> None:
    client = client_for(sigv4_server, {"access_key_id": "AKIDNOBODY", "secret_access_key": "x"})
    error = client_error(client.list_keys)
    assert error_code(error) == "UnrecognizedClientException"
    assert error.response["Error"]["Message"] == (
        "The security token included in the request is invalid."
    )


def test_missing_authorization_header(sigv4_server: RunningServer) -> None:
    response = raw_request(sigv4_server.port, {}, target="ListKeys")
    body = assert_kms_error(response, "MissingAuthenticationTokenException")
    assert body["message"] == "Request is missing Authentication Token"


def test_incomplete_authorization_header(sigv4_server: RunningServer) -> None:
    headers = {
        "Authorization": "AWS4-HMAC-SHA256 Credential=AKIDALICE0000001/20260101/us-east-1/kms/"
        "aws4_request, SignedHeaders=host;x-amz-date",
        "X-Amz-Date": datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ"),
    }
    response = raw_request(sigv4_server.port, {}, target="ListKeys", headers=headers)
    body = assert_kms_error(response, "IncompleteSignatureException")
    assert body["message"].startswith("Authorization header requires 'Signature' parameter.")


def _signed_raw(
    server: RunningServer,
    who: dict[str, str],
    *,
    body: bytes = b"{}",
    sent_body: bytes | None = None,
    signed_at: datetime | None = None,
    region: str = "us-east-1",
    path: str = "/",
) -> tuple[int, dict[str, str]]:
    headers = signed_headers(
        server.endpoint + path, "ListKeys", body, region=region, signed_at=signed_at, **who
    )
    response = raw_request(
        server.port, sent_body if sent_body is not None else body, path=path, headers=headers
    )
    return response.status, response.json()


def test_raw_request_signed_by_botocore_is_accepted(sigv4_server: RunningServer) -> None:
    status, body = _signed_raw(sigv4_server, ALICE)
    assert status == 200 and "Keys" in body


@pytest.mark.parametrize("minutes", [-6, -60])
def test_signature_expired(sigv4_server: RunningServer, minutes: int) -> None:
    status, body = _signed_raw(
        sigv4_server, ALICE, signed_at=datetime.now(UTC) + timedelta(minutes=minutes)
    )
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert re.fullmatch(
        rf"Signature expired: {BASIC_DATE} is now earlier than {BASIC_DATE} "
        rf"\({BASIC_DATE} - 5 min\.\)",
        body["message"],
    ), body["message"]


def test_signature_not_yet_current(sigv4_server: RunningServer) -> None:
    status, body = _signed_raw(
        sigv4_server, ALICE, signed_at=datetime.now(UTC) + timedelta(minutes=6)
    )
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert re.fullmatch(
        rf"Signature not yet current: {BASIC_DATE} is still later than {BASIC_DATE} "
        rf"\({BASIC_DATE} \+ 5 min\.\)",
        body["message"],
    ), body["message"]


@pytest.mark.parametrize("minutes", [-4, 4])
def test_skew_within_five_minutes_is_accepted(sigv4_server: RunningServer, minutes: int) -> None:
    status, _ = _signed_raw(
        sigv4_server, ALICE, signed_at=datetime.now(UTC) + timedelta(minutes=minutes)
    )
    assert status == 200


def test_body_changed_after_signing(sigv4_server: RunningServer) -> None:
    status, body = _signed_raw(sigv4_server, ALICE, body=b"{}", sent_body=b'{"Limit": 1}')
    assert status == 400
    assert body["__type"] == "InvalidSignatureException"
    assert body["message"].startswith(MISMATCH)


def test_path_is_part_of_the_signature(sigv4_server: RunningServer) -> None:
    """Signed for /kms/v1 but sent to /: the canonical URI differs."""
    headers = signed_headers(sigv4_server.endpoint + "/kms/v1", "ListKeys", b"{}", **ALICE)
    response = raw_request(sigv4_server.port, b"{}", path="/", headers=headers)
    assert_kms_error(response, "InvalidSignatureException")


def test_endpoint_url_with_a_path(sigv4_server: RunningServer) -> None:
    client = kms_client(sigv4_server.endpoint + "/kms/v1", **ALICE)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    assert client.describe_key(KeyId=key_id)["KeyMetadata"]["AWSAccountId"] == ALICE_ACCOUNT
    status, _ = _signed_raw(sigv4_server, ALICE, path="/kms/v1")
    assert status == 200


def test_session_token(sigv4_server: RunningServer) -> None:
    metadata = client_for(sigv4_server, CAROL).create_key()["KeyMetadata"]
    assert metadata["AWSAccountId"] == CAROL_ACCOUNT
    without = {k: v for k, v in CAROL.items() if k != "session_token"}
    error = client_error(client_for(sigv4_server, without).list_keys)
    assert error_code(error) == "UnrecognizedClientException"
    wrong = client_for(sigv4_server, CAROL, session_token="FwoG-wrong")
    assert error_code(client_error(wrong.list_keys)) == "UnrecognizedClientException"


def test_accounts_from_the_credentials_file_isolate_keys(sigv4_server: RunningServer) -> None:
    alice = client_for(sigv4_server, ALICE)
    bob = client_for(sigv4_server, BOB)
    alice_key = alice.create_key()["KeyMetadata"]["KeyId"]
    alice.create_alias(AliasName="alias/shared-name", TargetKeyId=alice_key)
    bob_key = bob.create_key()["KeyMetadata"]["KeyId"]
    bob.create_alias(AliasName="alias/shared-name", TargetKeyId=bob_key)  # no clash

    with pytest.raises(bob.exceptions.NotFoundException) as caught:
        bob.describe_key(KeyId=alice_key)
    assert caught.value.response["Error"]["Message"] == (
        f"Key 'arn:aws:kms:us-east-1:{BOB_ACCOUNT}:key/{alice_key}' does not exist"
    )
    assert alice_key not in {k["KeyId"] for k in bob.list_keys(Limit=1000)["Keys"]}
    assert bob_key not in {k["KeyId"] for k in alice.list_keys(Limit=1000)["Keys"]}
    assert alice.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == alice_key
    assert bob.describe_key(KeyId="alias/shared-name")["KeyMetadata"]["KeyId"] == bob_key
    blob = alice.encrypt(KeyId=alice_key, Plaintext=b"x")["CiphertextBlob"]
    with pytest.raises(bob.exceptions.InvalidCiphertextException):
        bob.decrypt(CiphertextBlob=blob)


def test_healthz_needs_no_credentials(sigv4_server: RunningServer) -> None:
    response = raw_request(sigv4_server.port, b"", method="GET", path="/healthz")
    assert response.status == 200
    assert json.loads(response.body)["status"] == "ok"


def test_aws_errors_win_over_validation_for_unauthenticated_calls(
    sigv4_server: RunningServer,
) -> None:
    """An unauthenticated request learns nothing about its body's validity."""
    response = raw_request(sigv4_server.port, {"NumberOfBytes": 0}, target="GenerateRandom")
    assert_kms_error(response, "MissingAuthenticationTokenException")


# --- open mode: accounts and regions -----------------------------------------------------------
def test_open_mode_accepts_any_credentials(kms_server: RunningServer) -> None:
    client = kms_client(kms_server.endpoint, access_key_id="ANYTHING", secret_access_key="any")
    metadata = client.create_key()["KeyMetadata"]
    assert metadata["AWSAccountId"] == "111122223333"  # not 12 digits: the default account


def test_open_mode_twelve_digit_access_key_is_the_account(kms_server: RunningServer) -> None:
    first, second = new_account_id(), new_account_id()
    one = kms_client(kms_server.endpoint, access_key_id=first)
    two = kms_client(kms_server.endpoint, access_key_id=second)
    metadata = one.create_key()["KeyMetadata"]
    assert metadata["AWSAccountId"] == first
    assert metadata["Arn"] == f"arn:aws:kms:us-east-1:{first}:key/{metadata['KeyId']}"
    assert [k["KeyId"] for k in one.list_keys()["Keys"]] == [metadata["KeyId"]]
    assert two.list_keys()["Keys"] == []
    with pytest.raises(two.exceptions.NotFoundException):
        two.describe_key(KeyId=metadata["KeyId"])


def test_open_mode_keys_are_per_region(kms_server: RunningServer) -> None:
    account = new_account_id()
    east = kms_client(kms_server.endpoint, access_key_id=account, region="us-east-1")
    west = kms_client(kms_server.endpoint, access_key_id=account, region="eu-west-1")
    metadata = east.create_key()["KeyMetadata"]
    key_id, arn = metadata["KeyId"], metadata["Arn"]

    with pytest.raises(west.exceptions.NotFoundException) as caught:
        west.describe_key(KeyId=key_id)
    assert caught.value.response["Error"]["Message"] == (
        f"Key 'arn:aws:kms:eu-west-1:{account}:key/{key_id}' does not exist"
    )
    with pytest.raises(west.exceptions.NotFoundException) as caught:
        west.describe_key(KeyId=arn)
    assert caught.value.response["Error"]["Message"] == "Invalid arn us-east-1"
    with pytest.raises(west.exceptions.NotFoundException) as caught:
        west.encrypt(KeyId=arn, Plaintext=b"x")
    assert caught.value.response["Error"]["Message"] == "Invalid arn us-east-1"
    assert west.list_keys()["Keys"] == []

    blob = east.encrypt(KeyId=key_id, Plaintext=b"regional")["CiphertextBlob"]
    with pytest.raises(west.exceptions.InvalidCiphertextException):
        west.decrypt(CiphertextBlob=blob)
    assert east.decrypt(CiphertextBlob=blob)["Plaintext"] == b"regional"


def test_open_mode_aliases_are_per_region(kms_server: RunningServer) -> None:
    account = new_account_id()
    east = kms_client(kms_server.endpoint, access_key_id=account, region="us-east-1")
    west = kms_client(kms_server.endpoint, access_key_id=account, region="eu-west-1")
    east_key = east.create_key()["KeyMetadata"]["KeyId"]
    west_key = west.create_key()["KeyMetadata"]["KeyId"]
    east.create_alias(AliasName="alias/app", TargetKeyId=east_key)
    west.create_alias(AliasName="alias/app", TargetKeyId=west_key)
    assert east.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == east_key
    assert west.describe_key(KeyId="alias/app")["KeyMetadata"]["KeyId"] == west_key
    aliases = west.list_aliases()["Aliases"]
    assert [a["AliasArn"] for a in aliases if a["AliasName"] == "alias/app"] == [
        f"arn:aws:kms:eu-west-1:{account}:alias/app"
    ]


def test_open_mode_region_without_authorization_is_the_default(kms_server: RunningServer) -> None:
    """No Authorization header at all: the default account and region."""
    response = raw_request(kms_server.port, {}, target="CreateKey")
    assert response.status == 200
    arn = response.json()["KeyMetadata"]["Arn"]
    assert arn.startswith("arn:aws:kms:us-east-1:111122223333:key/")


def test_open_mode_raw_caller_in_a_made_up_region(kms_server: RunningServer) -> None:
    caller = Caller(kms_server.port, region="local-1")
    key = caller.create_key()
    metadata = caller.ok("DescribeKey", {"KeyId": key})["KeyMetadata"]
    assert metadata["Arn"] == f"arn:aws:kms:local-1:{caller.account_id}:key/{key}"
    missing = str(uuid.uuid4())
    body = assert_kms_error(caller.call("DescribeKey", {"KeyId": missing}), "NotFoundException")
    assert f"arn:aws:kms:local-1:{caller.account_id}:key/{missing}" in body["message"]


def test_credentials_file_is_not_served(sigv4_server: RunningServer) -> None:
    """Paths are not files: GET on the data directory's names gives a JSON error."""
    for path in ("/credentials", "/root.key", "/../credentials"):
        response = raw_request(sigv4_server.port, b"", method="GET", path=path)
        assert response.status >= 400
        assert b"aws_secret_access_key" not in response.body


def test_log_has_no_secrets_for_failed_logins(sigv4_server: RunningServer) -> None:
    client = client_for(sigv4_server, ALICE, secret_access_key="wrong-secret-" + "q" * 8)
    client_error(client.list_keys)
    assert "wrong-secret-" not in sigv4_server.log()
