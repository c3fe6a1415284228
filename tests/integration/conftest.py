"""Fixtures of the operation-semantics tests (test_ops_*.py): a client in a fresh account of
the session server, and a key in it."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.kms_ops import KmsClient, account_client, create_key
from tests.support.server import RunningServer


@pytest.fixture()
def kms(kms_server: RunningServer) -> KmsClient:
    """A client in a fresh account: this test sees only its own keys."""
    return account_client(kms_server.endpoint)


@pytest.fixture()
def key(kms: KmsClient) -> dict[str, Any]:
    """An enabled symmetric key's metadata."""
    return create_key(kms)


@pytest.fixture()
def key_id(key: dict[str, Any]) -> str:
    """The id of :func:`key`."""
    return str(key["KeyId"])
