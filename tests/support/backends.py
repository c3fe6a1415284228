"""Helpers for the key-backend tests (tests/conformance): fresh material ids and nonces, and
JSON programs run in a fresh interpreter (the "restart" or "other process" of a backend)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from backends.base import NONCE_SIZE

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def material() -> str:
    """A fresh material id."""
    return os.urandom(32).hex()


def nonce() -> bytes:
    """A fresh nonce of the backends' size."""
    return os.urandom(NONCE_SIZE)


def run_python(
    program: str, request: dict[str, Any], timeout: float = 120, env: dict[str, str] | None = None
) -> Any:
    """Run ``program`` in a fresh interpreter with ``request`` as JSON on stdin; its JSON out."""
    result = subprocess.run(
        [sys.executable, "-c", program],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {}), "PYTHONPATH": str(PROJECT_ROOT)},
        cwd=PROJECT_ROOT,
        timeout=timeout,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)
