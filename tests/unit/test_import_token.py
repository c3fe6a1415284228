"""Import tokens (docs/key-import.md): bound to one key, tamper-evident, opaque."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kms_service.domain.clock import Clock
from kms_service.operations.context import Services
from kms_service.operations.import_token import (
    TOKEN_SIZE,
    InvalidTokenError,
    open_token,
    seal_token,
)
from kms_service.settings import Settings
from kms_service.store import MetadataStore

ARN = "arn:aws:kms:us-east-1:111122223333:key/6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f"
OTHER = "arn:aws:kms:us-east-1:111122223333:key/7b4c6f5d-9a8e-4d7f-9b6c-2d1e0f9a8b7c"


def services_with_root_key(tmp_path: Path, root_key: bytes) -> Services:
    settings = Settings.from_sources({"data_dir": str(tmp_path), "root_key": root_key.hex()})
    return Services(settings, MetadataStore(tmp_path), {}, Clock())


def test_token_round_trips_and_hides_the_wrapping_key_id(tmp_path: Path) -> None:
    services = services_with_root_key(tmp_path, os.urandom(32))
    wrapping_key_id = os.urandom(32).hex()
    token = seal_token(services, ARN, wrapping_key_id)
    assert len(token) == TOKEN_SIZE
    assert bytes.fromhex(wrapping_key_id) not in token
    assert open_token(services, ARN, token) == wrapping_key_id
    assert seal_token(services, ARN, wrapping_key_id) != token  # a fresh nonce each time


def test_token_for_another_key_tampered_or_truncated_is_invalid(tmp_path: Path) -> None:
    services = services_with_root_key(tmp_path, os.urandom(32))
    token = seal_token(services, ARN, os.urandom(32).hex())
    with pytest.raises(InvalidTokenError):
        open_token(services, OTHER, token)
    for index in (0, 1, 20, len(token) - 1):
        tampered = bytearray(token)
        tampered[index] ^= 0x01
        with pytest.raises(InvalidTokenError):
            open_token(services, ARN, bytes(tampered))
    with pytest.raises(InvalidTokenError):
        open_token(services, ARN, token[:-1])


def test_token_of_another_root_key_is_invalid(tmp_path: Path) -> None:
    mine = services_with_root_key(tmp_path / "a", os.urandom(32))
    theirs = services_with_root_key(tmp_path / "b", os.urandom(32))
    token = seal_token(theirs, ARN, os.urandom(32).hex())
    with pytest.raises(InvalidTokenError):
        open_token(mine, ARN, token)
