"""Shared fixtures: a real mock-kms server per test session, and boto3 clients for it."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import boto3
import pytest
from botocore.config import Config

from tests.support.server import RunningServer, start_server

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

TEST_CREDENTIALS = {
    "aws_access_key_id": "AKIDMOCKKMSTEST",
    "aws_secret_access_key": "mock-kms-test-secret",
}


KEY_BACKENDS = ["software", "pkcs11"]
#: The fixtures parametrised over KEY_BACKENDS (here and in tests/conformance).
BACKEND_FIXTURES = ("kms_server", "subject")
#: The cases of the session's ``kms_server``: one server per key backend, and ``postgres``:
#: two hosts (software backend) on one PostgreSQL database behind a round-robin proxy.
KMS_SERVER_CASES = [*KEY_BACKENDS, "postgres"]
#: Set to 1 to run the ``postgres`` case's two hosts on one shared SQLite data directory
#: instead (the multi-host setup without PostgreSQL; also what runs before mock-kms has
#: --database-url).
HOSTS_ON_SQLITE_VARIABLE = "MOCK_KMS_TEST_HOSTS_ON_SQLITE"


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
    (their ``pkcs11`` cases) here, and the others by ``@pytest.mark.hsm`` in their files.
    Likewise every ``postgres`` case of ``kms_server`` is marked ``postgres``."""
    for item in items:
        callspec = getattr(item, "callspec", None)
        params = callspec.params if callspec is not None else {}
        if any(params.get(name) == "pkcs11" for name in BACKEND_FIXTURES):
            item.add_marker(pytest.mark.hsm)
        if params.get("kms_server") == "postgres":
            item.add_marker(pytest.mark.postgres)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the session (skips locally without one, fails in CI).
    Take a fresh database per mock-kms with ``postgres.create_database()``. Tests that stop or
    restart PostgreSQL start their own (``tests.support.postgres.running_postgres``): this one
    is shared by the session's servers."""
    from tests.support.postgres import MISSING_REASON, postgres_available, start_postgres

    if not postgres_available():
        require_in_ci(MISSING_REASON)
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()


def store_settings_supported() -> set[str]:
    """Which of the multi-host settings (``database_url``, ``s3_dir``) this mock-kms has."""
    from kms_service.settings import Settings

    names = {entry.name for entry in dataclasses.fields(Settings)}
    return names & {"database_url", "s3_dir"}


@pytest.fixture(scope="session", params=KMS_SERVER_CASES)
def kms_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    """The session's KMS: one real ``mock-kms serve`` (2 gunicorn workers) per key backend,
    and for ``postgres`` two hosts (2 workers each, software backend) on one fresh PostgreSQL
    database behind a round-robin proxy, each request going to the next host: every test that
    uses it runs on the software keystore, on a SoftHSM token, and across two hosts."""
    case: str = request.param
    base = tmp_path_factory.mktemp(f"kms-{case}")
    server: RunningServer
    if case == "postgres":
        server = _start_two_hosts(request, base)
    else:
        server = start_server(base / "data", workers=2, env=backend_env(case, base / "hsm"))
    try:
        yield server
    finally:
        server.stop()


def _start_two_hosts(request: pytest.FixtureRequest, base: Path) -> RunningServer:
    """The ``postgres`` case of ``kms_server``: two hosts sharing one store behind a proxy.

    On PostgreSQL (a fresh database of the session's server) each host has its own data
    directory and both share the root key file and one ``--s3-dir``. With
    ``MOCK_KMS_TEST_HOSTS_ON_SQLITE=1``, or while this mock-kms has no ``--database-url``,
    the two hosts share one SQLite data directory instead; without --database-url and without
    that variable the case is skipped (a mock-kms without the PostgreSQL store).
    """
    from tests.support.hosts import start_hosts

    supported = store_settings_supported()
    if os.environ.get(HOSTS_ON_SQLITE_VARIABLE) == "1":
        return start_hosts(base, count=2, workers=2, shared_data_dir=True)
    if "database_url" not in supported:
        pytest.skip(
            "this mock-kms has no --database-url: the postgres case runs only with "
            f"{HOSTS_ON_SQLITE_VARIABLE}=1 (two hosts on one SQLite data directory)"
        )
    database_url = request.getfixturevalue("postgres").create_database()
    return start_hosts(
        base,
        count=2,
        workers=2,
        database_url=database_url,
        s3_dir=base / "s3" if "s3_dir" in supported else None,
    )


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
