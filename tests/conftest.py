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


KEY_BACKENDS = ["software", "pkcs11"]
#: The fixtures parametrised over KEY_BACKENDS (here and in tests/conformance).
BACKEND_FIXTURES = ("kms_server", "subject")


def backend_env(backend: str, base_dir: Path) -> dict[str, str]:
    """The environment that runs ``mock-kms serve`` on ``backend``: for ``pkcs11``, a fresh
    SoftHSM token under ``base_dir`` (skips locally without SoftHSM, fails in CI)."""
    if backend == "software":
        return {}
    from tests.support.softhsm import MISSING_REASON, create_softhsm_token, softhsm_available

    if not softhsm_available():
        require_in_ci(MISSING_REASON)
    return create_softhsm_token(base_dir)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that runs on a SoftHSM token ``hsm``, so that ``pytest -m "not hsm"``
    runs the rest on a machine without SoftHSM: the tests parametrised over the key backends
    (their ``pkcs11`` cases) here, and the others by ``@pytest.mark.hsm`` in their files."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if any(params.get(name) == "pkcs11" for name in BACKEND_FIXTURES):
            item.add_marker(pytest.mark.hsm)


@pytest.fixture(scope="session", params=KEY_BACKENDS)
def kms_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """One real ``mock-kms serve`` (2 gunicorn workers) per key backend for the session:
    every test that uses it runs once on the software keystore and once on a SoftHSM token."""
    backend: str = request.param
    base = tmp_path_factory.mktemp(f"kms-{backend}")
    env = backend_env(backend, base / "hsm")
    server = start_server(base / "data", workers=2, env=env)
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
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
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
