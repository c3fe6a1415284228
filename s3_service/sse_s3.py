"""SSE-S3 (``AES256``): a fresh data key per object, wrapped under the S3 master key.

The S3 master key is 32 random bytes created on first start and stored only wrapped under
the service's root key (``MOCK_KMS_ROOT_KEY`` or ``<data-dir>/root.key``, see
:func:`local_secrets.root_key.load_root_key`), in ``<data-dir>/s3/master-key.bin``::

    "MKS3" || version 1 || nonce (12) || AES-256-GCM(root key, master key, aad)

Each object's data key is stored as ``nonce || AES-256-GCM(master key, data key, aad =
envelope id)``, so a wrapped key copied onto another object's record does not unwrap. The
master key also keys the salted HMACs that check SSE-C keys (:mod:`s3_service.sse_c`), so a
copy of the database alone cannot test guesses of a customer key.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from local_secrets.secret_files import create_secret_file

MASTER_KEY_FILE = "master-key.bin"
_MAGIC = b"MKS3\x01"
_MASTER_AAD = b"mock-kms s3 master key v1"
_DATA_KEY_AAD = b"mock-kms s3 sse-s3 data key v1:"
NONCE_SIZE = 12
KEY_SIZE = 32


class MasterKeyError(Exception):
    """The S3 master key file is unreadable, malformed, or was wrapped under another root key.
    The message is one actionable line."""


class DataKeyUnwrapError(Exception):
    """A stored SSE-S3 data key failed authentication (tampered, or moved between objects)."""


def load_master_key(s3_dir: Path, root_key: bytes, *, create: bool) -> bytes:
    """The unwrapped S3 master key; created (O_EXCL, 0600) when ``create`` and missing.

    Raises :class:`MasterKeyError`.
    """
    path = s3_dir / MASTER_KEY_FILE
    root = AESGCM(root_key)
    if create and not path.exists():
        _create(path, root)
    try:
        blob = path.read_bytes()
    except FileNotFoundError:
        raise MasterKeyError(f"S3 master key {path} is missing; start the service once") from None
    except OSError as exc:
        raise MasterKeyError(f"cannot read S3 master key {path}: {exc.strerror}") from None
    if not blob.startswith(_MAGIC) or len(blob) != len(_MAGIC) + NONCE_SIZE + KEY_SIZE + 16:
        raise MasterKeyError(f"S3 master key {path} is malformed")
    nonce = blob[len(_MAGIC) : len(_MAGIC) + NONCE_SIZE]
    try:
        return root.decrypt(nonce, blob[len(_MAGIC) + NONCE_SIZE :], _MASTER_AAD)
    except InvalidTag:
        raise MasterKeyError(
            f"S3 master key {path} was wrapped under a different root key; start with the "
            "MOCK_KMS_ROOT_KEY (or root.key) this data directory was created with"
        ) from None


def _create(path: Path, root: AESGCM) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    nonce = os.urandom(NONCE_SIZE)
    create_secret_file(
        path, _MAGIC + nonce + root.encrypt(nonce, os.urandom(KEY_SIZE), _MASTER_AAD)
    )


class SseS3Keys:
    """Wraps and unwraps SSE-S3 data keys under one unwrapped master key."""

    def __init__(self, master_key: bytes) -> None:
        self._master = AESGCM(master_key)
        self._hmac_secret = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=None, info=b"mock-kms s3 sse-c hmac v1"
        ).derive(master_key)

    @property
    def hmac_secret(self) -> bytes:
        """The secret mixed into SSE-C key HMACs (derived, never the master key itself)."""
        return self._hmac_secret

    def new_data_key(self, envelope_id: str) -> tuple[bytes, bytes]:
        """A fresh 32-byte data key and its wrapped form bound to ``envelope_id``."""
        data_key = os.urandom(KEY_SIZE)
        nonce = os.urandom(NONCE_SIZE)
        wrapped = nonce + self._master.encrypt(
            nonce, data_key, _DATA_KEY_AAD + envelope_id.encode()
        )
        return data_key, wrapped

    def unwrap(self, wrapped: bytes, envelope_id: str) -> bytes:
        """The data key inside ``wrapped``. Raises :class:`DataKeyUnwrapError`."""
        try:
            return self._master.decrypt(
                wrapped[:NONCE_SIZE], wrapped[NONCE_SIZE:], _DATA_KEY_AAD + envelope_id.encode()
            )
        except (InvalidTag, ValueError):
            raise DataKeyUnwrapError(envelope_id) from None
