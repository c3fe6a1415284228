"""Writing a secret file once: mode 0600, never overwritten, durable before it is used."""

from __future__ import annotations

import os
from pathlib import Path


def create_secret_file(path: Path, data: bytes) -> bool:
    """Write ``data`` to a new 0600 file at ``path`` and fsync it.

    Returns False, writing nothing, when the file already exists: ``O_EXCL`` makes processes
    that start together agree on the first one's secret instead of each writing its own.
    Raises OSError for any other failure.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    return True
