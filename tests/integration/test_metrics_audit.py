"""``GET /metrics`` and the audit log against a real server with two workers."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.admin import metric, metrics_text
from tests.support.kms_ops import account_client, account_of
from tests.support.server import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    base = tmp_path_factory.mktemp("observed")
    extra = ["--audit-log", str(base / "audit.jsonl")]
    with running_server(base / "data", workers=2, extra_args=extra) as server:
        yield server


def audit_path(server: RunningServer) -> Path:
    return server.data_dir.parent / "audit.jsonl"


def events_of(server: RunningServer, account: str, expected: int) -> list[dict[str, Any]]:
    """The audit events of ``account``, once at least ``expected`` of them are written."""
    deadline = time.monotonic() + 10
    while True:
        lines = audit_path(server).read_text().splitlines()
        events = [json.loads(line) for line in lines]
        mine = [e for e in events if e.get("recipientAccountId") == account]
        if len(mine) >= expected or time.monotonic() > deadline:
            return mine
        time.sleep(0.1)


def test_metrics_count_the_requests_made(server: RunningServer) -> None:
    kms = account_client(server.endpoint)
    before = metrics_text(server)
    for _ in range(40):  # reach both workers: the scrape must add them up
        kms.generate_random(NumberOfBytes=8)
    missing = (
        "arn:aws:kms:us-east-1:"
        + account_of(kms)
        + ":key/"
        + "0" * 8
        + "-0000-0000-0000-"
        + "0" * 12
    )
    for _ in range(5):
        with pytest.raises(ClientError):
            kms.describe_key(KeyId=missing)
    created = [kms.create_key()["KeyMetadata"]["KeyId"] for _ in range(3)]
    kms.disable_key(KeyId=created[0])
    after = metrics_text(server)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    total = "mock_kms_requests_total"
    assert delta(total, operation="GenerateRandom", error_code="none") == 40
    assert delta(total, operation="DescribeKey", error_code="NotFoundException") == 5
    assert delta(total, operation="CreateKey", error_code="none") == 3
    assert delta(total, operation="DisableKey", error_code="none") == 1
    histogram = "mock_kms_request_duration_seconds"
    assert delta(f"{histogram}_count", operation="GenerateRandom") == 40
    assert delta(f"{histogram}_bucket", operation="GenerateRandom", le="+Inf") == 40
    assert delta(f"{histogram}_sum", operation="GenerateRandom") > 0
    assert delta("mock_kms_keys", state="Enabled") == 2
    assert delta("mock_kms_keys", state="Disabled") == 1
    assert metric(after, "mock_kms_backend_up", backend="software") == 1
    assert "# TYPE mock_kms_request_duration_seconds histogram" in after


def test_metrics_count_unknown_and_malformed_requests(server: RunningServer) -> None:
    import urllib.request

    before = metrics_text(server)
    request = urllib.request.Request(
        server.endpoint + "/",
        data=b"{}",
        headers={
            "X-Amz-Target": "TrentService.NoSuchThing",
            "Content-Type": "application/x-amz-json-1.1",
        },
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(request, timeout=5)
    after = metrics_text(server)
    labels = {"operation": "Unknown", "error_code": "UnknownOperationException"}
    assert (
        metric(after, "mock_kms_requests_total", **labels)
        - metric(before, "mock_kms_requests_total", **labels)
        == 1
    )


def test_audit_log_has_one_event_per_request_and_no_secret_material(
    server: RunningServer,
) -> None:
    kms = account_client(server.endpoint)
    account = account_of(kms)
    marker = secrets.token_hex(8)
    plaintexts = [f"plaintext-{marker}-{i}".encode() for i in range(5)]
    context = {"tenant": f"context-value-{marker}"}
    key = kms.create_key(
        Description=f"description-{marker}", Tags=[{"TagKey": "team", "TagValue": f"tag-{marker}"}]
    )
    key_id = key["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName=f"alias/{marker}", TargetKeyId=key_id)
    secrets_seen: list[bytes] = []
    requests = 2
    for plaintext in plaintexts:
        blob = kms.encrypt(KeyId=f"alias/{marker}", Plaintext=plaintext, EncryptionContext=context)[
            "CiphertextBlob"
        ]
        assert kms.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == plaintext
        secrets_seen.append(blob)
        requests += 2
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256", EncryptionContext=context)
    secrets_seen += [data_key["Plaintext"], data_key["CiphertextBlob"]]
    random_bytes = kms.generate_random(NumberOfBytes=32)["Plaintext"]
    secrets_seen.append(random_bytes)
    with pytest.raises(ClientError):
        kms.decrypt(CiphertextBlob=b"\x01junk" + marker.encode(), EncryptionContext=context)
    requests += 3

    events = events_of(server, account, requests)
    assert len(events) == requests
    names = [e["eventName"] for e in events]
    assert names.count("Encrypt") == 5 and names.count("Decrypt") == 6
    assert names.count("GenerateDataKey") == names.count("CreateKey") == 1
    for event in events:
        assert event["eventSource"] == "kms.amazonaws.com"
        assert event["userIdentity"]["accountId"] == account
        assert event["awsRegion"] == "us-east-1"
        assert event["requestID"] and event["eventID"] and event["eventTime"].endswith("Z")
    encrypts = [e for e in events if e["eventName"] == "Encrypt"]
    assert all(e["requestParameters"]["encryptionContextKeys"] == ["tenant"] for e in encrypts)
    assert all(e["resources"][0]["ARN"].endswith(f":key/{key_id}") for e in encrypts)
    assert [e.get("errorCode") for e in events if "errorCode" in e] == [
        "InvalidCiphertextException"
    ]

    raw = audit_path(server).read_bytes()
    root_key = (server.data_dir / "root.key").read_bytes().strip()
    forbidden = [
        *plaintexts,
        context["tenant"].encode(),
        f"description-{marker}".encode(),
        f"tag-{marker}".encode(),
        root_key,
    ]
    for secret in [*forbidden, *secrets_seen]:
        assert secret not in raw
        assert base64.b64encode(secret) not in raw


def test_metrics_path_with_a_query_is_left_to_s3(server: RunningServer) -> None:
    import urllib.request

    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(server.endpoint + "/metrics?list-type=2", timeout=5)
    assert info.value.code == 404
    assert b"NoSuchBucket" in info.value.read()  # S3 answered, in S3's XML
