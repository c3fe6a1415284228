"""Writing a secret file once: mode 0600, never overwritten, durable before it is used."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def create_secret_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new 0600 file at ``path`` and fsync it.

    Returns False, writing nothing, when the file already exists: an atomic ``link()`` makes
    processes that start together agree on the first one's secret instead of each writing its own.
    Raises OSError for any other failure.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        return False
    # Written whole under a private name, then linked into place: link() fails when the name
    # exists, and a process that starts at the same moment (several hosts sharing one
    # directory) reads either no file or the complete one, never a half-written one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            return False
    finally:
        temporary.unlink(missing_ok=True)
    return True
