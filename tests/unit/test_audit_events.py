"""Audit events (CloudTrail-shaped, never a secret) and the buffered audit log."""

from __future__ import annotations

import json
from pathlib import Path

from kms_service.observability.audit import AuditLog, build_event
from kms_service.operations import RequestScope


def test_audit_event_keeps_context_keys_and_drops_every_secret() -> None:
    scope = RequestScope("111122223333", "eu-west-1", "arn:aws:iam::111122223333:root")
    params = {
        "KeyId": "alias/orders",
        "Plaintext": b"PLAINTEXT-SECRET",
        "EncryptionContext": {"tenant": "CONTEXT-VALUE-SECRET"},
        "Policy": "POLICY-SECRET",
        "Description": "DESCRIPTION-SECRET",
        "Tags": [{"TagKey": "team", "TagValue": "TAG-VALUE-SECRET"}],
        "GrantTokens": ["GRANT-SECRET"],
    }
    result = {
        "KeyId": "arn:aws:kms:eu-west-1:111122223333:key/6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f",
        "CiphertextBlob": b"CIPHERTEXT",
        "Plaintext": b"DATA-KEY-SECRET",
    }
    event = build_event(
        event_time=0.0,
        request_id="r-1",
        operation="Encrypt",
        scope=scope,
        params=params,
        result=result,
        error_code=None,
        source_ip="127.0.0.1",
        user_agent="test",
        default_region="us-east-1",
    )
    text = json.dumps(event)
    assert "SECRET" not in text and "CIPHERTEXT" not in text
    assert event["requestParameters"] == {
        "keyId": "alias/orders",
        "encryptionContextKeys": ["tenant"],
        "tagKeys": ["team"],
    }
    assert event["resources"][0]["ARN"] == result["KeyId"]
    assert event["awsRegion"] == "eu-west-1" and event["eventName"] == "Encrypt"
    assert event["userIdentity"]["type"] == "Root" and "errorCode" not in event


def test_audit_event_of_an_unauthenticated_failure() -> None:
    event = build_event(
        event_time=0.0,
        request_id="r-2",
        operation="Unknown",
        scope=None,
        params=None,
        result=None,
        error_code="UnknownOperationException",
        source_ip=None,
        user_agent=None,
        default_region="us-east-1",
    )
    assert event["userIdentity"] == {"type": "Unknown"}
    assert event["errorCode"] == "UnknownOperationException"
    assert "resources" not in event


def test_audit_log_buffers_then_appends_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "audit.log"
    log = AuditLog(str(path), flush_seconds=60)
    for index in range(100):
        log.write({"n": index})
    assert path.read_text() == ""  # nothing written on the request path
    log.flush()
    lines = path.read_text().splitlines()
    assert [json.loads(line)["n"] for line in lines] == list(range(100))
    assert path.stat().st_mode & 0o777 == 0o600
    log.close()
