"""Import tokens: the opaque blob GetParametersForImport returns and ImportKeyMaterial takes.

A token names the wrapping key pair it came with and is bound to the KMS key it was issued
for; the format is in docs/key-import.md::

    0x01 (format version) || nonce (12) || AES-256-GCM(token key, wrapping key id (32), aad)

with ``aad = 0x01 || key ARN``. The token key is derived from the root key with HKDF, so every
worker and every host sharing the root key opens every token, a token altered in any bit or
presented for another key fails authentication, and nothing in it is readable.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from kms_service.domain.errors import KMSInternalException
from kms_service.operations.context import Services
from local_secrets.root_key import RootKeyError, load_root_key

TOKEN_VERSION = 1
_NONCE_SIZE = 12
_ID_SIZE = 32
_HKDF_INFO = b"mock-kms import token v1"
TOKEN_SIZE = 1 + _NONCE_SIZE + _ID_SIZE + 16


class InvalidTokenError(Exception):
    """The bytes are not a token issued for this key by this service."""


@functools.lru_cache(maxsize=4)
def _token_cipher(data_dir: Path, root_key_setting: str | None) -> AESGCM:
    try:
        root_key = load_root_key(data_dir, root_key_setting, create=False)
    except RootKeyError:
        raise KMSInternalException("The root key is unavailable.") from None
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(root_key)
    return AESGCM(key)


def _cipher(services: Services) -> AESGCM:
    return _token_cipher(services.settings.data_dir, services.settings.root_key)


def _aad(key_arn: str) -> bytes:
    return bytes([TOKEN_VERSION]) + key_arn.encode()


def seal_token(services: Services, key_arn: str, wrapping_key_id: str) -> bytes:
    """The import token for ``wrapping_key_id`` (64 lowercase hex), bound to ``key_arn``."""
    nonce = os.urandom(_NONCE_SIZE)
    sealed = _cipher(services).encrypt(nonce, bytes.fromhex(wrapping_key_id), _aad(key_arn))
    return bytes([TOKEN_VERSION]) + nonce + sealed


def open_token(services: Services, key_arn: str, token: bytes) -> str:
    """The wrapping key id inside ``token``. Raises :class:`InvalidTokenError` for anything
    that is not, bit for bit, a token this service issued for ``key_arn``."""
    if len(token) != TOKEN_SIZE or token[0] != TOKEN_VERSION:
        raise InvalidTokenError()
    nonce, sealed = token[1 : 1 + _NONCE_SIZE], token[1 + _NONCE_SIZE :]
    try:
        wrapping_key_id = _cipher(services).decrypt(nonce, sealed, _aad(key_arn))
    except InvalidTag:
        raise InvalidTokenError() from None
    return wrapping_key_id.hex()
