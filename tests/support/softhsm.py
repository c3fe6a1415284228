"""SoftHSM tokens for tests, built with the same code as ``mock-kms softhsm-init``.

Two ways to get one:

* :func:`create_softhsm_token` makes a token in its own directory and returns the environment
  for a *separate* process (a ``mock-kms serve`` under test, a child script).
* :func:`new_in_process_token` makes a token usable from *this* process. SoftHSM reads
  ``SOFTHSM2_CONF`` when it is initialised, and a process can have it initialised only once,
  so every in-process token of a test run lives in one shared SoftHSM directory, and
  ``SOFTHSM2_CONF`` is pointed at it the first time.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path

from backends.softhsm import (
    SoftHsmNotInstalledError,
    SoftHsmToken,
    find_softhsm_module,
    find_softhsm_util,
    init_softhsm_token,
)

MISSING_REASON = "SoftHSM is not installed (apt-get install softhsm2)"

_shared: dict[str, Path] = {}


def softhsm_available() -> bool:
    """Whether ``libsofthsm2.so`` and ``softhsm2-util`` are both installed."""
    try:
        find_softhsm_module()
        find_softhsm_util()
    except SoftHsmNotInstalledError:
        return False
    return True


def unique_label(prefix: str = "t") -> str:
    """A token label no other test uses (PKCS#11 labels are at most 32 characters)."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def create_softhsm_token(base_dir: Path, label: str = "mock-kms") -> dict[str, str]:
    """Create a fresh token under ``base_dir`` and return the environment to run on it.

    The environment holds ``SOFTHSM2_CONF``, ``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``,
    ``PKCS11_PIN_FILE`` and ``MOCK_KMS_BACKEND=pkcs11``; add ``MOCK_KMS_DATA_DIR`` yourself.
    Raises :class:`backends.softhsm.SoftHsmError` (including "not installed").
    """
    return init_softhsm_token(base_dir, label).env()


def shared_softhsm_dir(base_dir: Path) -> Path:
    """The one SoftHSM data directory of this process, created under ``base_dir`` once.

    Later calls return the first directory whatever ``base_dir`` they pass.
    """
    if "dir" not in _shared:
        _shared["dir"] = base_dir
    return _shared["dir"]


def new_in_process_token(base_dir: Path, prefix: str = "t") -> SoftHsmToken:
    """A fresh token (unique label) that a backend in this process can open.

    Also serves as the lock directory for every process that uses it (pass
    ``shared_softhsm_dir(base_dir)`` as ``lock_dir``).
    """
    token = init_softhsm_token(shared_softhsm_dir(base_dir), unique_label(prefix))
    configured = os.environ.get("SOFTHSM2_CONF")
    if configured != str(token.conf_path):
        if _shared.get("conf_set"):
            raise RuntimeError(f"SOFTHSM2_CONF was changed behind our back to {configured}")
        os.environ["SOFTHSM2_CONF"] = str(token.conf_path)
        _shared["conf_set"] = token.conf_path
    return token
