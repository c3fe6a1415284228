"""Shared fixtures: a real mock-kms server per test session, and boto3 clients for it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from tests.support.server import RunningServer, start_server

TEST_CREDENTIALS = {
    "aws_access_key_id": "AKIDMOCKKMSTEST",
    "aws_secret_access_key": "mock-kms-test-secret",
}


@pytest.fixture(scope="session")
def kms_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """One real ``mock-kms serve`` (2 gunicorn workers, software backend) for the session."""
    server = start_server(tmp_path_factory.mktemp("kms") / "data", workers=2)
    try:
        yield server
    finally:
        server.stop()


def make_kms_client(endpoint: str, region: str = "us-east-1", **credentials: str) -> object:
    """A boto3 KMS client for ``endpoint`` with retries off, so errors surface at once."""
    creds = {**TEST_CREDENTIALS, **credentials}
    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **creds,
    )


@pytest.fixture()
def kms(kms_server: RunningServer):  # type: ignore[no-untyped-def]
    """A boto3 KMS client pointed at the session's server."""
    return make_kms_client(kms_server.endpoint)


def require_in_ci(reason: str) -> None:
    """Skip locally, but fail when the ``CI`` variable is set: CI must install everything."""
    if os.environ.get("CI"):
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture()
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"
