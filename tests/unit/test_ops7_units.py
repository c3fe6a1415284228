"""Pure parts of the operability features: durations, fault rules, audit events, the shared
settings cache, and the store's schema migration."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from kms_service.admin.durations import parse_duration
from kms_service.admin.faults import FaultConfigError, FaultInjector, parse_rules
from kms_service.admin.shared_settings import CLOCK_OFFSET, SharedSettings
from kms_service.domain.clock import Clock
from kms_service.domain.errors import KMSInternalException, ThrottlingException
from kms_service.observability.audit import AuditLog, build_event
from kms_service.operations import RequestScope
from kms_service.store import MetadataStore
from kms_service.store.sqlite import DATABASE_FILE, SCHEMA_VERSION


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("400d", 400 * 86400), ("12h", 43200), ("1d12h30m", 131400), ("2w", 1209600), ("90", 90)],
)
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "4y", "d4", "-3d"])
def test_bad_durations_say_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="400d"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"Encrypt": {"ThrottlingException": 1.5}}, "Encrypt.ThrottlingException"),
        ({"Encrypt": {"Boom": 0.1}}, "Encrypt.Boom: unknown field"),
        ({"Encrypt": {"ThrottlingException": 0.6, "KMSInternalException": 0.6}}, "more than 1"),
        ({"Encrypt": {"latency_ms": [300, 100]}}, "min <= max"),
        ({"Encrypt": {"latency_ms": -1}}, "Encrypt.latency_ms"),
        ({"not an op!": {}}, "not an operation name"),
        (["Encrypt"], "mapping"),
    ],
)
def test_bad_fault_rules_name_operation_and_field(rules: object, words: str) -> None:
    with pytest.raises(FaultConfigError, match=words.replace("(", r"\(")):
        parse_rules(rules)


class _Shared:
    """A SharedSettings stand-in holding values in memory."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.data.get(name)

    def set(self, name: str, value: str | None) -> None:
        if value is None:
            self.data.pop(name, None)
        else:
            self.data[name] = value


def test_injector_applies_operation_rule_else_wildcard() -> None:
    shared = _Shared()
    slept: list[float] = []
    noted: list[tuple[str, str]] = []
    injector = FaultInjector(shared, on_fault=lambda o, f: noted.append((o, f)), sleep=slept.append)  # type: ignore[arg-type]
    injector.set_rules(
        parse_rules(
            {
                "Encrypt": {"ThrottlingException": 1.0, "latency_ms": 250},
                "*": {"KMSInternalException": 1.0},
            }
        )
    )
    with pytest.raises(ThrottlingException, match="injected by mock-kms"):
        injector.before_operation("Encrypt")
    assert slept == [0.25]
    with pytest.raises(KMSInternalException):
        injector.before_operation("Decrypt")
    assert noted == [
        ("Encrypt", "latency"),
        ("Encrypt", "ThrottlingException"),
        ("Decrypt", "KMSInternalException"),
    ]
    injector.set_rules({})
    injector.before_operation("Encrypt")  # no rules: nothing happens


def test_injector_rate_follows_probability() -> None:
    shared = _Shared()
    injector = FaultInjector(shared)  # type: ignore[arg-type]
    injector.set_rules(parse_rules({"Encrypt": {"ThrottlingException": 0.25}}))
    failures = 0
    for _ in range(4000):
        try:
            injector.before_operation("Encrypt")
        except ThrottlingException:
            failures += 1
    assert 0.2 < failures / 4000 < 0.3


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


def test_shared_settings_cache_and_clock(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path)
    store.initialise()
    other = MetadataStore(tmp_path)  # another worker
    mine = SharedSettings(store, cache_seconds=60)
    theirs = SharedSettings(other, cache_seconds=0)
    clock = Clock(10.0, theirs.clock_offset)
    before = clock.now()
    assert mine.clock_offset() == 0.0
    mine.set(CLOCK_OFFSET, repr(86400.0))
    assert mine.clock_offset() == 86400.0
    assert clock.now() - before >= 86400.0
    theirs.set(CLOCK_OFFSET, None)
    assert mine.clock_offset() == 86400.0  # within its cache time, a stale view is allowed
    store.close()
    other.close()


def test_version_1_database_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / DATABASE_FILE
    connection = sqlite3.connect(path)
    connection.executescript(
        "CREATE TABLE keys (account_id TEXT, region TEXT, key_id TEXT);"
        "INSERT INTO keys VALUES ('111122223333', 'us-east-1', 'k');"
        "PRAGMA user_version = 1;"
    )
    connection.close()
    store = MetadataStore(tmp_path)
    with pytest.raises(sqlite3.Error):  # before: no settings table
        store.service_settings()
    store.close()
    store = MetadataStore(tmp_path)
    store.initialise()
    assert store.service_settings() == {}
    with store.write():
        store.set_service_setting("x", "1")
    assert store.service_settings() == {"x": "1"}
    store.close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    assert connection.execute("SELECT key_id FROM keys").fetchall() == [("k",)]
    connection.close()
