"""Helpers for the operation-semantics tests (tests/integration/test_ops_*.py).

Every test gets its own account (a random 12-digit access key id is the account in open auth
mode), so tests sharing the session server never see each other's keys, aliases or quotas.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from database import open_database
from tests.conftest import TEST_CREDENTIALS

#: A boto3 KMS client (boto3 ships no type stubs here).
KmsClient = Any

#: botocore's message when the body has none (InvalidCiphertextException and friends).
NO_MESSAGE = ""

UUID_PATTERN = r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$"
MRK_PATTERN = r"^mrk-[0-9a-f]{32}$"
MATERIAL_ID_PATTERN = r"^[0-9a-f]{64}$"
KEYSTORE_FILE = "software-keystore.sqlite3"
METADATA_FILE = "mock-kms.sqlite3"


def new_account_id() -> str:
    """A random 12-digit account id (first digit non-zero)."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def account_client(
    endpoint: str,
    account_id: str | None = None,
    region: str = "us-east-1",
    *,
    validate: bool = True,
) -> KmsClient:
    """A boto3 client acting as ``account_id`` (a fresh one if None) in ``region``.

    Exactly one attempt per call: in botocore's standard mode ``max_attempts=1`` still allows
    one retry, and LimitExceededException counts as throttling there, so a retried call would
    hide what the first one did. ``validate=False`` turns botocore's own parameter checks off,
    so that the server's checks can be seen.
    """
    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=account_id or new_account_id(),
        aws_secret_access_key=TEST_CREDENTIALS["aws_secret_access_key"],
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            parameter_validation=validate,
        ),
    )


def account_of(client: KmsClient) -> str:
    """The account id a client from :func:`account_client` acts as."""
    return str(client._request_signer._credentials.access_key)


def region_of(client: KmsClient) -> str:
    return str(client.meta.region_name)


def key_arn(client: KmsClient, key_id: str) -> str:
    return f"arn:aws:kms:{region_of(client)}:{account_of(client)}:key/{key_id}"


def alias_arn(client: KmsClient, alias_name: str) -> str:
    return f"arn:aws:kms:{region_of(client)}:{account_of(client)}:{alias_name}"


@contextmanager
def expect_error(code: str, message: str | None = None) -> Iterator[pytest.ExceptionInfo[Any]]:
    """Assert the block raises the AWS error ``code`` with HTTP 400.

    ``message`` (when given) must equal the error message exactly; pass :data:`NO_MESSAGE`
    for errors AWS sends without one.
    """
    with pytest.raises(ClientError) as info:
        yield info
    response = info.value.response
    assert response["Error"]["Code"] == code, response["Error"]
    assert response["ResponseMetadata"]["HTTPStatusCode"] == 400, response["ResponseMetadata"]
    if message is not None:
        assert response["Error"].get("Message", "") == message, response["Error"]


def create_key(client: KmsClient, **kwargs: Any) -> dict[str, Any]:
    """CreateKey; returns the KeyMetadata."""
    return dict(client.create_key(**kwargs)["KeyMetadata"])


def _material_ids(target: Path | str, *statements: str) -> set[str]:
    """The first column of every row ``statements`` select, read through mock-kms's own
    database layer from the SQLite file ``target`` or the PostgreSQL URL ``target``."""
    database = open_database(target)
    try:
        return {str(row[0]) for statement in statements for row in database.execute(statement)}
    finally:
        database.close()


def keystore_material_ids(data_dir: Path, *, database_url: str | None = None) -> set[str]:
    """Material ids held in the software keystore: its SQLite file in ``data_dir``, or the
    PostgreSQL database of a server started with ``database_url``."""
    target = database_url or data_dir / KEYSTORE_FILE
    return _material_ids(target, "SELECT material_id FROM material")


def metadata_material_ids(data_dir: Path, *, database_url: str | None = None) -> set[str]:
    """Material ids the metadata database refers to (live keys, and destruction pending), in
    ``data_dir`` or in the PostgreSQL database ``database_url``."""
    return _material_ids(
        database_url or data_dir / METADATA_FILE,
        "SELECT material_id FROM key_materials",
        "SELECT material_id FROM pending_destruction",
    )
