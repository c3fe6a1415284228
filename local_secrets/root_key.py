"""The root key: the one secret every other secret at rest is wrapped under.

Both the KMS's software keystore and the S3 endpoint's SSE-S3 master key are stored wrapped
under it, so neither owns it: this module reads it from ``MOCK_KMS_ROOT_KEY`` or a 0600 file in
the data directory, creating the file on first start.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import os
from pathlib import Path

from local_secrets.secret_files import create_secret_file

ROOT_KEY_FILE = "root.key"
ROOT_KEY_SIZE = 32


class RootKeyError(Exception):
    """The root key is missing, unreadable or malformed; the message is one actionable line."""


def load_root_key(data_dir: Path, env_value: str | None, *, create: bool) -> bytes:
    """Return the 32-byte root key.

    ``env_value`` (``MOCK_KMS_ROOT_KEY``, base64 or 64 hex digits) wins; otherwise the key is
    read from ``<data_dir>/root.key``, which is created with mode 0600 when ``create`` is true
    and it does not exist yet. Raises :class:`RootKeyError`.
    """
    if env_value:
        return _decode_root_key(env_value.strip(), "MOCK_KMS_ROOT_KEY")
    path = data_dir / ROOT_KEY_FILE
    if create and not path.exists():
        _create_root_key_file(path)
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise RootKeyError(
            f"root key file {path} is missing; start the service once to create it"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RootKeyError(f"cannot read root key file {path}: {exc.__class__.__name__}") from None
    return _decode_root_key(text, str(path))


def _create_root_key_file(path: Path) -> None:
    create_secret_file(path, base64.b64encode(os.urandom(ROOT_KEY_SIZE)) + b"\n")


def _decode_root_key(text: str, source: str) -> bytes:
    candidates: list[bytes] = []
    if len(text) == 2 * ROOT_KEY_SIZE:
        with contextlib.suppress(ValueError):
            candidates.append(bytes.fromhex(text))
    with contextlib.suppress(binascii.Error, ValueError):
        candidates.append(base64.b64decode(text, validate=True))
    for key in candidates:
        if len(key) == ROOT_KEY_SIZE:
            return key
    raise RootKeyError(f"root key from {source} must be 32 bytes, given as base64 or 64 hex digits")
