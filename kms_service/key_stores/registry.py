"""Each process's view of the custom key stores: their connection state (read from the
database, shared by every worker and host) and this process's PKCS#11 sessions on their
tokens, opened on first use and dropped when the store is no longer connected.

The gunicorn master never gets here: these objects are built per worker (``build_services``),
and a store's token is only touched when a request uses it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

from backends.base import BackendUnavailableError, KeyBackend
from backends.pkcs11 import Pkcs11Backend
from backends.pkcs11_session import LOCK_TIMEOUT_SECONDS
from kms_service.domain.errors import KeyUnavailableException
from kms_service.domain.key_states import KeyState
from kms_service.key_stores.clusters import (
    DEFAULT_KEY_STORE_ID,
    KEY_STORE_PREFIX,
    ClusterToken,
)
from kms_service.key_stores.connection import LOST_WHILE_SERVING
from kms_service.store import KeyRecord, KeyStoreRecord, MetadataStore
from local_secrets.key_store_passwords import PasswordUnwrapError, unwrap_password

log = logging.getLogger("mock_kms.key_stores")

T = TypeVar("T")

CONNECTED = "CONNECTED"
CONNECTING = "CONNECTING"
DISCONNECTED = "DISCONNECTED"
FAILED = "FAILED"


class KeyStorePkcs11Backend(Pkcs11Backend):
    """The PKCS#11 backend of one custom key store: when its token becomes unreachable it
    reports it (the store turns FAILED for every worker) before raising as usual."""

    def __init__(
        self,
        module: str,
        token_label: str,
        pin: str,
        lock_dir: Path,
        on_unavailable: Callable[[], None],
    ) -> None:
        super().__init__(module, token_label, pin, lock_dir)
        self._on_unavailable = on_unavailable

    def _call(
        self, operation: Callable[[Any], T], *, lock_timeout: float = LOCK_TIMEOUT_SECONDS
    ) -> T:
        try:
            return super()._call(operation, lock_timeout=lock_timeout)
        except BackendUnavailableError:
            self._on_unavailable()
            raise


def store_id_of_backend(backend_name: str) -> str | None:
    """The key store a key's ``backend`` names: the default store for ``pkcs11``, the store
    itself for a ``cks-`` id, none for the software keystore."""
    if backend_name == "pkcs11":
        return DEFAULT_KEY_STORE_ID
    if backend_name.startswith(KEY_STORE_PREFIX):
        return backend_name
    return None


class KeyStoreBackends:
    """Per-process sessions on the custom key stores' tokens. Thread-safe."""

    def __init__(
        self,
        store: MetadataStore,
        clusters: dict[str, ClusterToken],
        root_key: bytes,
        lock_dir: Path,
        *,
        default_store: bool,
    ) -> None:
        """``default_store``: this process serves the default store (``--backend pkcs11``)."""
        self._store = store
        self.clusters = clusters
        self.root_key = root_key
        self.lock_dir = lock_dir
        self._default_store = default_store
        self._lock = threading.Lock()
        #: store id → (connection epoch the session was opened in, backend)
        self._open: dict[str, tuple[int, KeyStorePkcs11Backend]] = {}

    def password(self, record: KeyStoreRecord) -> str:
        """The store's password (the token PIN). Raises :class:`PasswordUnwrapError`."""
        if record.password_nonce is None or record.password_wrapped is None:
            raise PasswordUnwrapError(f"custom key store {record.store_id} has no password")
        return unwrap_password(
            self.root_key, record.store_id, record.password_nonce, record.password_wrapped
        )

    def effective(self, key: KeyRecord) -> KeyRecord:
        """``key`` as callers see it: ``Unavailable`` while its key store is not connected
        (only Enabled and Disabled keys; a key pending deletion stays so, as on AWS)."""
        if key.state not in (KeyState.ENABLED, KeyState.DISABLED):
            return key
        store_id = store_id_of_backend(key.backend)
        if store_id is None or (store_id == DEFAULT_KEY_STORE_ID and not self._default_store):
            return key
        record = self._store.get_key_store(store_id)
        if record is None or record.connection_state == CONNECTED:
            return key
        if store_id in self._open:
            # Disconnected (or FAILED) elsewhere: this worker closes its session too.
            self.drop(store_id)
        return replace(key, state=KeyState.UNAVAILABLE)

    def backend(self, store_id: str) -> KeyBackend:
        """This process's backend on a connected store's token, opened on first use and
        reopened when the store was reconnected since.

        Raises :class:`KeyUnavailableException` when the store is not connected (a request
        racing a DisconnectCustomKeyStore; resolved keys show Unavailable before this).
        """
        record = self._store.get_key_store(store_id)
        if record is None or record.connection_state != CONNECTED:
            self.drop(store_id)
            raise KeyUnavailableException(f"The custom key store {store_id} is not connected.")
        with self._lock:
            opened = self._open.get(store_id)
            if opened is not None and opened[0] == record.connection_epoch:
                return opened[1]
        self.drop(store_id)
        cluster = self.clusters.get(record.cluster_id)
        try:
            pin = self.password(record)
        except PasswordUnwrapError as exc:
            log.error("%s", exc)
            raise KeyUnavailableException(
                f"The custom key store {store_id} is unavailable."
            ) from None
        if cluster is None:
            raise KeyUnavailableException(f"The custom key store {store_id} is unavailable.")
        epoch = record.connection_epoch
        backend = KeyStorePkcs11Backend(
            cluster.module,
            cluster.token_label,
            pin,
            self.lock_dir,
            on_unavailable=lambda: self.mark_failed(store_id, epoch),
        )
        with self._lock:
            current = self._open.get(store_id)
            if current is not None and current[0] == epoch:
                return current[1]  # another thread opened it meanwhile; ours was never used
            self._open[store_id] = (epoch, backend)
        return backend

    def mark_failed(self, store_id: str, epoch: int) -> None:
        """The token of a connected store stopped answering: the store turns FAILED (with
        :data:`LOST_WHILE_SERVING`) for every worker, until it is disconnected and connected."""
        with self._store.write():
            record = self._store.get_key_store(store_id)
            if (
                record is not None
                and record.connection_state == CONNECTED
                and record.connection_epoch == epoch
            ):
                self._store.update_key_store(
                    store_id, connection_state=FAILED, connection_error=LOST_WHILE_SERVING
                )
                log.warning("custom key store %s lost its token: now FAILED", store_id)

    def drop(self, store_id: str) -> None:
        """Close this process's session on the store's token, if it has one."""
        with self._lock:
            opened = self._open.pop(store_id, None)
        if opened is not None:
            opened[1].close()

    def close(self) -> None:
        with self._lock:
            opened = list(self._open.values())
            self._open.clear()
        for _epoch, backend in opened:
            backend.close()
