"""Fault injection against a real server: injected errors come at about the configured rate,
boto3's standard retry mode recovers from them, latency is added, and a rules file works."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.conftest import TEST_CREDENTIALS
from tests.support.admin import DEV, admin, metric, metrics_text, mock_kms
from tests.support.kms_ops import account_client, new_account_id
from tests.support.server import RunningServer, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("faults") / "data", workers=2, env=DEV) as server:
        yield server


@pytest.fixture(autouse=True)
def no_rules_after(server: RunningServer) -> Iterator[None]:
    yield
    admin(server, "DELETE", "/faults")


def test_injected_errors_come_at_the_configured_rate(server: RunningServer) -> None:
    rules = {"GenerateRandom": {"ThrottlingException": 0.3, "KMSInternalException": 0.1}}
    status, answer = admin(server, "PUT", "/faults", rules)
    assert status == 200 and answer == rules
    before = metrics_text(server)
    kms = account_client(server.endpoint)  # one attempt per call: every fault is seen
    outcomes: Counter[str] = Counter()
    calls = 400
    for _ in range(calls):
        try:
            kms.generate_random(NumberOfBytes=16)
            outcomes["ok"] += 1
        except ClientError as error:
            outcomes[error.response["Error"]["Code"]] += 1
            if error.response["Error"]["Code"] == "KMSInternalException":
                assert error.response["ResponseMetadata"]["HTTPStatusCode"] == 500
                assert "injected by mock-kms" in error.response["Error"]["Message"]
    # 400 draws: the standard deviation is about 9 (throttling) and 6 (internal) calls.
    assert 0.2 * calls < outcomes["ThrottlingException"] < 0.4 * calls, outcomes
    assert 0.04 * calls < outcomes["KMSInternalException"] < 0.17 * calls, outcomes
    assert set(outcomes) == {"ok", "ThrottlingException", "KMSInternalException"}
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    for _ in range(50):  # an operation without a rule is untouched
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    after = metrics_text(server)
    for fault in ("ThrottlingException", "KMSInternalException"):
        counted = metric(
            after, "mock_kms_injected_faults_total", operation="GenerateRandom", fault=fault
        )
        counted -= metric(
            before, "mock_kms_injected_faults_total", operation="GenerateRandom", fault=fault
        )
        assert counted == outcomes[fault]


def test_boto3_standard_retries_recover_from_every_injected_error(server: RunningServer) -> None:
    rules = {
        "Encrypt": {
            "ThrottlingException": 0.15,
            "KMSInternalException": 0.1,
            "DependencyTimeoutException": 0.05,
            "KeyUnavailableException": 0.05,
        },
        "Decrypt": {"ThrottlingException": 0.2, "DependencyTimeoutException": 0.1},
    }
    setup = account_client(server.endpoint)
    key_id = setup.create_key()["KeyMetadata"]["KeyId"]
    assert admin(server, "PUT", "/faults", rules)[0] == 200
    retrying = boto3.client(
        "kms",
        endpoint_url=server.endpoint,
        region_name="us-east-1",
        aws_access_key_id=setup._request_signer._credentials.access_key,
        aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"],
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )
    retries = 0
    for index in range(60):
        plaintext = f"message {index}".encode()
        encrypted = retrying.encrypt(KeyId=key_id, Plaintext=plaintext)
        decrypted = retrying.decrypt(CiphertextBlob=encrypted["CiphertextBlob"])
        assert decrypted["Plaintext"] == plaintext
        retries += encrypted["ResponseMetadata"]["RetryAttempts"]
        retries += decrypted["ResponseMetadata"]["RetryAttempts"]
    # About 0.35 * 60 + 0.3 * 60 = 39 faults expected; every one was retried away.
    assert retries >= 10


def test_latency_is_added_then_removed(server: RunningServer) -> None:
    kms = account_client(server.endpoint)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    assert admin(server, "PUT", "/faults", {"DescribeKey": {"latency_ms": [300, 400]}})[0] == 200
    for _ in range(4):
        started = time.monotonic()
        kms.describe_key(KeyId=key_id)
        assert time.monotonic() - started >= 0.3
    assert admin(server, "DELETE", "/faults") == (200, {})
    started = time.monotonic()
    kms.describe_key(KeyId=key_id)
    assert time.monotonic() - started < 0.3


def test_bad_rules_are_refused_with_the_field(server: RunningServer) -> None:
    status, answer = admin(server, "PUT", "/faults", {"Encrypt": {"ThrottlingException": 2}})
    assert status == 400 and "Encrypt.ThrottlingException" in answer["error"]
    assert admin(server, "GET", "/faults") == (200, {})


def test_rules_file_at_start_and_from_the_cli(tmp_path: Path) -> None:
    rules = tmp_path / "faults.yaml"
    rules.write_text("GenerateRandom:\n  DependencyTimeoutException: 1.0\n")
    extra = ["--faults-file", str(rules)]
    with running_server(tmp_path / "data", env=DEV, extra_args=extra) as server:
        kms = account_client(server.endpoint, new_account_id())
        for _ in range(10):
            with pytest.raises(ClientError, match="DependencyTimeoutException"):
                kms.generate_random(NumberOfBytes=8)
        result = mock_kms("faults", "clear", "--endpoint", server.endpoint)
        assert result.returncode == 0, result.stderr
        assert len(kms.generate_random(NumberOfBytes=8)["Plaintext"]) == 8
        rules.write_text("GenerateRandom:\n  ThrottlingException: 1.0\n")
        result = mock_kms("faults", "set", str(rules), "--endpoint", server.endpoint)
        assert result.returncode == 0, result.stderr
        with pytest.raises(ClientError, match="ThrottlingException"):
            kms.generate_random(NumberOfBytes=8)


def test_rules_file_needs_dev_endpoints(tmp_path: Path) -> None:
    rules = tmp_path / "faults.yaml"
    rules.write_text("Encrypt: {ThrottlingException: 0.5}\n")
    result = mock_kms("serve", "--data-dir", str(tmp_path / "data"), "--faults-file", str(rules))
    assert result.returncode == 2
    assert "MOCK_KMS_DEV_ENDPOINTS=1" in result.stderr
