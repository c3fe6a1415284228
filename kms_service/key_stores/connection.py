"""Connecting a key store: logging in to its token once, in a child process, and naming a
failure with AWS's ``ConnectionErrorCode`` (the mapping is in docs/custom-key-stores.md)."""

from __future__ import annotations

import logging
from pathlib import Path

from backends.pkcs11 import Pkcs11Backend
from backends.pkcs11_session import Pkcs11ConfigError
from kms_service.key_stores.clusters import ClusterToken

log = logging.getLogger("mock_kms.key_stores")

#: ``Pkcs11ConfigError.reason`` → AWS ``ConnectionErrorCode``.
ERROR_CODES = {
    "module": "NETWORK_ERRORS",
    "token": "NETWORK_ERRORS",
    "pin": "INVALID_CREDENTIALS",
    "pin_locked": "USER_LOCKED_OUT",
    "other": "INTERNAL_ERROR",
}
CLUSTER_NOT_FOUND = "CLUSTER_NOT_FOUND"
#: What a store that loses its token while serving reports.
LOST_WHILE_SERVING = "NETWORK_ERRORS"


def check_connection(
    store_id: str, cluster: ClusterToken | None, pin: str, lock_dir: Path
) -> str | None:
    """Log in to ``cluster``'s token with ``pin`` in a child process (so no module is loaded
    here for a check, and a wrong PIN never sticks to this process's login) and log out.

    Returns None when it works, else the ``ConnectionErrorCode``. Never raises for a token
    problem; the log line names the cause without the PIN.
    """
    if cluster is None:
        log.warning("custom key store %s: its cluster is not configured", store_id)
        return CLUSTER_NOT_FOUND
    try:
        Pkcs11Backend.open(
            module=cluster.module,
            token_label=cluster.token_label,
            pin=pin,
            pin_file=None,
            lock_dir=lock_dir,
        )
    except Pkcs11ConfigError as exc:
        log.warning("custom key store %s cannot connect: %s", store_id, exc)
        return ERROR_CODES.get(exc.reason, "INTERNAL_ERROR")
    return None
