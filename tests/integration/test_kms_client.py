"""The thin client against the real service: every operation, side by side with boto3.

Both clients act as the same fresh account (in ``open`` auth mode a 12-digit access key id is
the account), so they see the same keys and their answers can be compared value for value.
A second server runs with ``MOCK_KMS_AUTH=sigv4`` to prove the client's signatures verify.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3  # type: ignore[import-untyped]
import pytest
from botocore.config import Config  # type: ignore[import-untyped]

from clients.kms import KmsClient, errors
from clients.kms.errors import KmsClientError
from tests.support.server import RunningServer, start_server

Boto = Any  # boto3 ships no type stubs


def new_account_id() -> str:
    return str(secrets.randbelow(9 * 10**11) + 10**11)


class Pair:
    """Our client and a boto3 client acting as the same account on the same server."""

    def __init__(self, endpoint: str) -> None:
        account = new_account_id()
        self.account = account
        self.ours = KmsClient(
            endpoint,
            region_name="us-east-1",
            aws_access_key_id=account,
            aws_secret_access_key="mock-kms-test-secret",
            max_attempts=1,
        )
        self.boto: Boto = boto3.client(
            "kms",
            endpoint_url=endpoint,
            region_name="us-east-1",
            aws_access_key_id=account,
            aws_secret_access_key="mock-kms-test-secret",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )

    def key(self, **params: Any) -> str:
        """A new symmetric key's id."""
        return str(self.ours.create_key(**params)["KeyMetadata"]["KeyId"])

    def key_pending_deletion(self) -> str:
        """A new key already scheduled for deletion (through boto3)."""
        key_id = self.key()
        self.boto.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
        return key_id


@pytest.fixture()
def pair(kms_server: RunningServer) -> Iterator[Pair]:
    clients = Pair(kms_server.endpoint)
    yield clients
    clients.ours.close()


def body(response: dict[str, Any]) -> dict[str, Any]:
    """A response without ``ResponseMetadata`` (request ids and dates always differ)."""
    return {name: value for name, value in response.items() if name != "ResponseMetadata"}


def shape(value: Any) -> Any:
    """The structure of a response: member names and Python types, not values."""
    if isinstance(value, dict):
        return {name: shape(item) for name, item in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value else []
    return type(value).__name__


def assert_same_shape(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Same members, same types, and the same ``ResponseMetadata`` keys as boto3's answer."""
    assert shape(body(ours)) == shape(body(theirs))
    assert set(ours["ResponseMetadata"]) == set(theirs["ResponseMetadata"])
    assert ours["ResponseMetadata"]["HTTPStatusCode"] == 200
    assert ours["ResponseMetadata"]["RequestId"]


def assert_aware_datetimes(value: Any) -> int:
    """Every datetime in ``value`` is timezone-aware; returns how many there were."""
    if isinstance(value, datetime):
        assert value.tzinfo is not None and value.utcoffset() is not None
        return 1
    if isinstance(value, dict):
        return sum(assert_aware_datetimes(item) for item in value.values())
    if isinstance(value, list):
        return sum(assert_aware_datetimes(item) for item in value)
    return 0


# --- keys --------------------------------------------------------------------------------
def test_create_and_describe_key_match_boto3(pair: Pair) -> None:
    tags = [{"TagKey": "team", "TagValue": "crypto"}]
    ours = pair.ours.create_key(Description="ours", Tags=tags)
    theirs = pair.boto.create_key(Description="theirs", Tags=tags)
    assert_same_shape(ours, theirs)
    metadata = ours["KeyMetadata"]
    assert metadata["Description"] == "ours"
    assert metadata["AWSAccountId"] == pair.account
    assert assert_aware_datetimes(ours) == 1

    key_id = metadata["KeyId"]
    described = pair.ours.describe_key(KeyId=key_id)
    assert body(described) == body(pair.boto.describe_key(KeyId=key_id))
    assert body(described) == body(ours)


def test_list_keys_and_its_paginator(pair: Pair) -> None:
    created = {pair.key() for _ in range(3)}
    listed = pair.ours.list_keys()
    assert body(listed) == body(pair.boto.list_keys())
    assert {entry["KeyId"] for entry in listed["Keys"]} == created

    pages = list(pair.ours.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 1}))
    assert len(pages) == 3
    assert all(page["Truncated"] for page in pages[:-1]) and not pages[-1]["Truncated"]
    ours_full = pair.ours.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
    boto_full = pair.boto.get_paginator("list_keys").paginate(PaginationConfig={"PageSize": 2})
    assert ours_full.build_full_result() == boto_full.build_full_result()


def test_enable_and_disable_key(pair: Pair) -> None:
    key_id = pair.key()
    disabled = pair.ours.disable_key(KeyId=key_id)
    assert_same_shape(disabled, pair.boto.enable_key(KeyId=pair.key()))
    assert body(disabled) == {}
    assert pair.ours.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"
    with pytest.raises(pair.ours.exceptions.DisabledException) as caught:
        pair.ours.encrypt(KeyId=key_id, Plaintext=b"x")
    assert key_id in caught.value.message
    assert caught.value.request_id
    pair.ours.enable_key(KeyId=key_id)
    assert pair.ours.describe_key(KeyId=key_id)["KeyMetadata"]["Enabled"] is True


def test_update_key_description(pair: Pair) -> None:
    key_id = pair.key(Description="before")
    result = pair.ours.update_key_description(KeyId=key_id, Description="after")
    assert body(result) == {}
    assert pair.boto.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] == "after"


def test_schedule_and_cancel_key_deletion(pair: Pair) -> None:
    key_id = pair.key()
    scheduled = pair.ours.schedule_key_deletion(KeyId=key_id, PendingWindowInDays=7)
    assert_same_shape(
        scheduled, pair.boto.schedule_key_deletion(KeyId=pair.key(), PendingWindowInDays=7)
    )
    assert isinstance(scheduled["DeletionDate"], datetime)
    assert assert_aware_datetimes(scheduled) == 1
    assert scheduled["PendingWindowInDays"] == 7
    described = pair.ours.describe_key(KeyId=key_id)["KeyMetadata"]
    assert described["KeyState"] == "PendingDeletion"
    assert described["DeletionDate"] == scheduled["DeletionDate"]
    with pytest.raises(errors.KMSInvalidStateException) as caught:
        pair.ours.encrypt(KeyId=key_id, Plaintext=b"x")
    assert "pending deletion" in caught.value.message.lower()

    cancelled = pair.ours.cancel_key_deletion(KeyId=key_id)
    assert_same_shape(cancelled, pair.boto.cancel_key_deletion(KeyId=pair.key_pending_deletion()))
    assert cancelled["KeyId"].endswith(key_id)
    assert pair.ours.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


# --- cryptography ------------------------------------------------------------------------
def test_encrypt_and_decrypt_interoperate_with_boto3(pair: Pair) -> None:
    key_id = pair.key()
    context = {"purpose": "test", "Plaintext": "context keys are not blobs"}
    ours = pair.ours.encrypt(KeyId=key_id, Plaintext=b"\x00secret", EncryptionContext=context)
    theirs = pair.boto.encrypt(KeyId=key_id, Plaintext=b"\x00secret", EncryptionContext=context)
    assert_same_shape(ours, theirs)
    assert isinstance(ours["CiphertextBlob"], bytes)

    by_boto = pair.boto.decrypt(CiphertextBlob=ours["CiphertextBlob"], EncryptionContext=context)
    by_ours = pair.ours.decrypt(CiphertextBlob=theirs["CiphertextBlob"], EncryptionContext=context)
    assert by_boto["Plaintext"] == by_ours["Plaintext"] == b"\x00secret"
    assert body(by_ours) == body(by_boto)

    text = pair.ours.encrypt(KeyId=key_id, Plaintext="unicode ✓")
    assert pair.ours.decrypt(CiphertextBlob=text["CiphertextBlob"])["Plaintext"] == (
        "unicode ✓".encode()
    )


def test_decrypt_failures_map_to_their_classes(pair: Pair) -> None:
    key_id, other_id = pair.key(), pair.key()
    blob = pair.ours.encrypt(KeyId=key_id, Plaintext=b"x", EncryptionContext={"a": "b"})[
        "CiphertextBlob"
    ]
    with pytest.raises(errors.InvalidCiphertextException) as wrong_context:
        pair.ours.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "c"})
    assert wrong_context.value.message == ""
    assert wrong_context.value.status == 400
    assert wrong_context.value.request_id
    with pytest.raises(errors.IncorrectKeyException) as wrong_key:
        pair.ours.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"}, KeyId=other_id)
    with pytest.raises(pair.boto.exceptions.IncorrectKeyException) as boto_wrong_key:
        pair.boto.decrypt(CiphertextBlob=blob, EncryptionContext={"a": "b"}, KeyId=other_id)
    assert wrong_key.value.message == boto_wrong_key.value.response["Error"]["Message"]


def test_re_encrypt(pair: Pair) -> None:
    source, destination = pair.key(), pair.key()
    blob = pair.ours.encrypt(KeyId=source, Plaintext=b"move me", EncryptionContext={"s": "1"})[
        "CiphertextBlob"
    ]
    params = {
        "CiphertextBlob": blob,
        "SourceEncryptionContext": {"s": "1"},
        "DestinationKeyId": destination,
        "DestinationEncryptionContext": {"d": "2"},
    }
    ours = pair.ours.re_encrypt(**params)
    assert_same_shape(ours, pair.boto.re_encrypt(**params))
    assert ours["SourceKeyId"].endswith(source) and ours["KeyId"].endswith(destination)
    decrypted = pair.boto.decrypt(
        CiphertextBlob=ours["CiphertextBlob"], EncryptionContext={"d": "2"}
    )
    assert decrypted["Plaintext"] == b"move me"


def test_generate_data_key(pair: Pair) -> None:
    key_id = pair.key()
    ours = pair.ours.generate_data_key(
        KeyId=key_id, KeySpec="AES_256", EncryptionContext={"o": "1"}
    )
    theirs = pair.boto.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert_same_shape(ours, theirs)
    assert len(ours["Plaintext"]) == 32
    unwrapped = pair.boto.decrypt(
        CiphertextBlob=ours["CiphertextBlob"], EncryptionContext={"o": "1"}
    )
    assert unwrapped["Plaintext"] == ours["Plaintext"]
    assert len(pair.ours.generate_data_key(KeyId=key_id, NumberOfBytes=7)["Plaintext"]) == 7


def test_generate_data_key_without_plaintext(pair: Pair) -> None:
    key_id = pair.key()
    ours = pair.ours.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_128")
    assert_same_shape(
        ours, pair.boto.generate_data_key_without_plaintext(KeyId=key_id, KeySpec="AES_128")
    )
    assert "Plaintext" not in ours
    assert len(pair.ours.decrypt(CiphertextBlob=ours["CiphertextBlob"])["Plaintext"]) == 16


def test_generate_random(pair: Pair) -> None:
    ours = pair.ours.generate_random(NumberOfBytes=24)
    assert_same_shape(ours, pair.boto.generate_random(NumberOfBytes=24))
    assert isinstance(ours["Plaintext"], bytes) and len(ours["Plaintext"]) == 24
    # boto3 refuses 0 client-side; we leave validation to the server, which must refuse it.
    with pytest.raises(errors.ValidationException) as caught:
        pair.ours.generate_random(NumberOfBytes=0)
    assert "numberOfBytes" in caught.value.message


# --- rotation ----------------------------------------------------------------------------
def test_automatic_rotation(pair: Pair) -> None:
    key_id = pair.key()
    assert body(pair.ours.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)) == {}
    status = pair.ours.get_key_rotation_status(KeyId=key_id)
    assert body(status) == body(pair.boto.get_key_rotation_status(KeyId=key_id))
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 90
    assert assert_aware_datetimes(status) >= 1
    pair.ours.disable_key_rotation(KeyId=key_id)
    assert pair.boto.get_key_rotation_status(KeyId=key_id)["KeyRotationEnabled"] is False


def test_on_demand_rotation_and_listing(pair: Pair) -> None:
    key_id = pair.key()
    before = pair.ours.encrypt(KeyId=key_id, Plaintext=b"old")["CiphertextBlob"]
    rotated = pair.ours.rotate_key_on_demand(KeyId=key_id)
    assert_same_shape(rotated, pair.boto.rotate_key_on_demand(KeyId=pair.key()))
    assert rotated["KeyId"].endswith(key_id)
    rotations = pair.ours.list_key_rotations(KeyId=key_id)
    assert body(rotations) == body(pair.boto.list_key_rotations(KeyId=key_id))
    assert rotations["Rotations"] and assert_aware_datetimes(rotations) >= 1
    assert pair.ours.decrypt(CiphertextBlob=before)["Plaintext"] == b"old"


# --- aliases -----------------------------------------------------------------------------
def test_alias_lifecycle(pair: Pair) -> None:
    first, second = pair.key(), pair.key()
    name = f"alias/client-{uuid.uuid4().hex[:8]}"
    assert body(pair.ours.create_alias(AliasName=name, TargetKeyId=first)) == {}
    listed = pair.ours.list_aliases(KeyId=first)
    assert body(listed) == body(pair.boto.list_aliases(KeyId=first))
    assert [alias["AliasName"] for alias in listed["Aliases"]] == [name]
    assert assert_aware_datetimes(listed) == 2

    encrypted = pair.ours.encrypt(KeyId=name, Plaintext=b"via alias")
    assert encrypted["KeyId"].endswith(first)

    with pytest.raises(errors.AlreadyExistsException) as duplicate:
        pair.ours.create_alias(AliasName=name, TargetKeyId=second)
    assert name.removeprefix("alias/") in duplicate.value.message

    pair.ours.update_alias(AliasName=name, TargetKeyId=second)
    assert pair.boto.list_aliases(KeyId=second)["Aliases"][0]["AliasName"] == name
    pair.ours.delete_alias(AliasName=name)
    assert pair.ours.list_aliases(KeyId=second)["Aliases"] == []
    with pytest.raises(errors.NotFoundException):
        pair.ours.delete_alias(AliasName=name)


# --- tags and policies -------------------------------------------------------------------
def test_tags(pair: Pair) -> None:
    key_id = pair.key()
    tags = [{"TagKey": "a", "TagValue": "1"}, {"TagKey": "b", "TagValue": ""}]
    assert body(pair.ours.tag_resource(KeyId=key_id, Tags=tags)) == {}
    listed = pair.ours.list_resource_tags(KeyId=key_id)
    assert body(listed) == body(pair.boto.list_resource_tags(KeyId=key_id))
    assert sorted(listed["Tags"], key=lambda tag: tag["TagKey"]) == tags
    pair.ours.untag_resource(KeyId=key_id, TagKeys=["a", "never-set"])
    assert pair.boto.list_resource_tags(KeyId=key_id)["Tags"] == [tags[1]]


def test_key_policies(pair: Pair) -> None:
    key_id = pair.key()
    policies = pair.ours.list_key_policies(KeyId=key_id)
    assert body(policies) == body(pair.boto.list_key_policies(KeyId=key_id))
    assert policies["PolicyNames"] == ["default"]

    current = pair.ours.get_key_policy(KeyId=key_id, PolicyName="default")
    assert body(current) == body(pair.boto.get_key_policy(KeyId=key_id, PolicyName="default"))
    document = json.loads(current["Policy"])
    document["Statement"][0]["Sid"] = "Changed by the thin client"
    policy = json.dumps(document)
    assert body(pair.ours.put_key_policy(KeyId=key_id, PolicyName="default", Policy=policy)) == {}
    stored = pair.boto.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
    assert json.loads(stored)["Statement"][0]["Sid"] == "Changed by the thin client"
    with pytest.raises(errors.MalformedPolicyDocumentException):
        pair.ours.put_key_policy(KeyId=key_id, PolicyName="default", Policy="{not json")


# --- errors and the generic entry point ---------------------------------------------------
def test_not_found_matches_boto3s_error(pair: Pair) -> None:
    missing = str(uuid.uuid4())
    with pytest.raises(errors.NotFoundException) as ours:
        pair.ours.describe_key(KeyId=missing)
    with pytest.raises(pair.boto.exceptions.NotFoundException) as theirs:
        pair.boto.describe_key(KeyId=missing)
    error = ours.value
    assert error.code == theirs.value.response["Error"]["Code"] == "NotFoundException"
    assert error.message == theirs.value.response["Error"]["Message"]
    assert f"arn:aws:kms:us-east-1:{pair.account}:key/{missing}" in error.message
    assert (
        error.request_id
        and error.request_id != theirs.value.response["ResponseMetadata"]["RequestId"]
    )
    assert error.status == 400
    assert str(error) == str(theirs.value)


def test_generic_call_and_unknown_operation(pair: Pair) -> None:
    created = pair.ours.call("CreateKey", Description="generic")
    assert created["KeyMetadata"]["Description"] == "generic"
    with pytest.raises(KmsClientError) as caught:
        pair.ours.call("NoSuchOperation")
    assert caught.value.code == "UnknownOperationException"
    assert type(caught.value) is errors.UnknownOperationException


def test_one_client_shared_by_threads(pair: Pair) -> None:
    key_id = pair.key()
    failures: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for round_trip in range(10):
                plaintext = f"{worker}-{round_trip}".encode()
                blob = pair.ours.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]
                assert pair.ours.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert failures == []
    # One keep-alive connection per thread (the main thread's, which created the key, and
    # the workers'), not one per request: 81 requests were made.
    assert pair.ours._pool.connections_opened <= 1 + len(threads)


# --- SigV4 against a verifying server -------------------------------------------------------
SIGNING_SECRET = "sigv4-integration-secret/with+chars"


@pytest.fixture(scope="module")
def sigv4_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RunningServer, Path]]:
    """A server that verifies every signature, and the credentials file it trusts."""
    root = tmp_path_factory.mktemp("kms-sigv4")
    credentials = root / "credentials"
    credentials.write_text(
        "[default]\n"
        "aws_access_key_id = AKIDCLIENTSIGV4\n"
        f"aws_secret_access_key = {SIGNING_SECRET}\n"
        "\n[session]\n"
        "aws_access_key_id = ASIACLIENTSIGV4\n"
        "aws_secret_access_key = session-secret\n"
        "aws_session_token = the-session-token\n"
    )
    server = start_server(
        root / "data",
        env={"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)},
    )
    try:
        yield server, credentials
    finally:
        server.stop()


@pytest.fixture()
def aws_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("AWS_REGION", "eu-west-3")


def test_signed_requests_from_the_credentials_file_pass(
    sigv4_server: tuple[RunningServer, Path], aws_environment: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, credentials = sigv4_server
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("MOCK_KMS_ENDPOINT", server.endpoint)
    client = KmsClient(max_attempts=1)  # everything from the environment and the file
    assert client.credentials is not None
    assert client.credentials.access_key_id == "AKIDCLIENTSIGV4"
    created = client.create_key(Description="signed")["KeyMetadata"]
    assert created["Arn"].startswith("arn:aws:kms:eu-west-3:")
    blob = client.encrypt(KeyId=created["KeyId"], Plaintext=b"signed")["CiphertextBlob"]
    assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == b"signed"

    monkeypatch.setenv("AWS_PROFILE", "session")
    with KmsClient(max_attempts=1) as session_client:
        assert session_client.credentials is not None
        assert session_client.credentials.session_token == "the-session-token"
        assert session_client.generate_random(NumberOfBytes=8)["Plaintext"]


def test_wrong_secret_fails_with_invalid_signature(
    sigv4_server: tuple[RunningServer, Path], aws_environment: None
) -> None:
    server, _ = sigv4_server
    client = KmsClient(
        server.endpoint,
        aws_access_key_id="AKIDCLIENTSIGV4",
        aws_secret_access_key=SIGNING_SECRET + "-wrong",
        max_attempts=3,
    )
    with pytest.raises(errors.InvalidSignatureException) as caught:
        client.list_keys()
    error = caught.value
    assert error.message.startswith("The request signature we calculated does not match")
    assert error.request_id and error.status == 400
    assert error.retry_attempts == 0  # a 4xx is never retried


@pytest.mark.parametrize(
    ("key", "secret", "token", "expected"),
    [
        ("AKIDNOBODYKNOWS", "whatever", None, errors.UnrecognizedClientException),
        ("ASIACLIENTSIGV4", "session-secret", "not-the-token", errors.UnrecognizedClientException),
    ],
    ids=["unknown-key", "wrong-session-token"],
)
def test_unknown_identities_are_refused(
    sigv4_server: tuple[RunningServer, Path],
    aws_environment: None,
    key: str,
    secret: str,
    token: str | None,
    expected: type[KmsClientError],
) -> None:
    server, _ = sigv4_server
    client = KmsClient(server.endpoint, None, key, secret, token, max_attempts=1)
    with pytest.raises(expected) as caught:
        client.list_keys()
    assert caught.value.message.startswith("The security token included in the request is invalid")


def test_unsigned_requests_are_refused(
    sigv4_server: tuple[RunningServer, Path], aws_environment: None
) -> None:
    server, _ = sigv4_server
    client = KmsClient(server.endpoint, unsigned=True, max_attempts=1)
    with pytest.raises(errors.MissingAuthenticationTokenException):
        client.list_keys()
