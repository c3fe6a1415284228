"""Software keystore: AES-256 key material in SQLite, each key wrapped under a root key.

The database file holds only ``AES-GCM(root key, material)`` with the material id as
associated data, so a wrapped key cannot be moved to another id. The root key comes from
``MOCK_KMS_ROOT_KEY`` or a 0600 file in the data directory
(see :func:`local_secrets.root_key.load_root_key`).
"""

from __future__ import annotations

import hmac
import os
import sqlite3
import threading
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from backends.base import (
    NONCE_SIZE,
    BackendCapabilities,
    BackendHealth,
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
    MaterialRejectedError,
    SymmetricOnlyOperations,
)

KEYSTORE_FILE = "software-keystore.sqlite3"


#: Symmetric keys only, until the other key kinds land here.
SOFTWARE_CAPABILITIES = BackendCapabilities(
    key_specs=frozenset({"SYMMETRIC_DEFAULT"}), exportable=True
)


class SoftwareBackend(SymmetricOnlyOperations):
    """AES-256-GCM under wrapped key material stored in a SQLite file.

    Thread-safe: each thread has its own SQLite connection; unwrapped keys are cached per
    process (material never changes under an id, so the cache can't go stale; a destroyed id
    is only ever reached again through metadata that no longer exists).
    """

    def __init__(self, data_dir: Path, root_key: bytes) -> None:
        self._path = data_dir / KEYSTORE_FILE
        self._root = AESGCM(root_key)
        self._local = threading.local()
        self._cache: dict[str, AESGCM] = {}
        with self._connect() as connection:
            connection.execute(
                "CREATE TABLE IF NOT EXISTS material ("
                " material_id TEXT PRIMARY KEY, nonce BLOB NOT NULL, wrapped BLOB NOT NULL)"
            )

    @property
    def name(self) -> str:
        return "software"

    def _connect(self) -> sqlite3.Connection:
        connection: sqlite3.Connection | None = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = sqlite3.connect(self._path, timeout=30, isolation_level=None)
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=NORMAL")
            except sqlite3.Error as exc:
                raise BackendUnavailableError(f"software keystore: {exc}") from None
            self._local.connection = connection
        return connection

    @property
    def capabilities(self) -> BackendCapabilities:
        return SOFTWARE_CAPABILITIES

    def create_material(self, material_id: str, key_spec: str = "SYMMETRIC_DEFAULT") -> None:
        if key_spec not in self.capabilities.key_specs:
            raise self._unsupported(key_spec)
        self._store_wrapped(material_id, os.urandom(32))

    def import_material(self, material_id: str, key_spec: str, material: bytes) -> None:
        """Keep caller-supplied ``material`` (seed files, imports) under ``material_id``,
        wrapped under the root key exactly like generated material.

        Idempotent for the same bytes. Raises :class:`MaterialRejectedError` when ``material``
        is not a key of ``key_spec`` or the id already holds other material,
        :class:`UnsupportedMechanismError`, :class:`BackendUnavailableError`.
        """
        if key_spec not in self.capabilities.key_specs:
            raise self._unsupported(key_spec)
        if len(material) != 32:
            raise MaterialRejectedError("key material must be 32 bytes (AES-256)")
        try:
            existing = self.export_material(material_id)
        except MaterialNotFoundError:
            existing = None
        if existing is not None:
            if not hmac.compare_digest(existing, material):
                raise MaterialRejectedError(
                    f"key material {material_id} already holds other material"
                )
            return
        self._store_wrapped(material_id, material)

    def _store_wrapped(self, material_id: str, material: bytes) -> None:
        """Keep ``material`` wrapped under the root key (bound to its id); an id that is
        already there keeps what it has. Raises :class:`BackendUnavailableError`."""
        nonce = os.urandom(NONCE_SIZE)
        wrapped = self._root.encrypt(nonce, material, material_id.encode())
        try:
            self._connect().execute(
                "INSERT OR IGNORE INTO material (material_id, nonce, wrapped) VALUES (?, ?, ?)",
                (material_id, nonce, wrapped),
            )
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None

    def export_material(self, material_id: str) -> bytes:
        """The unwrapped material (``mock-kms export --include-material``, seed checks).

        Raises :class:`MaterialNotFoundError`, :class:`BackendUnavailableError`.
        """
        return self._unwrap(material_id)

    def _cipher(self, material_id: str) -> AESGCM:
        cipher = self._cache.get(material_id)
        if cipher is not None:
            return cipher
        cipher = AESGCM(self._unwrap(material_id))
        self._cache[material_id] = cipher
        return cipher

    def _unwrap(self, material_id: str) -> bytes:
        try:
            row = (
                self._connect()
                .execute(
                    "SELECT nonce, wrapped FROM material WHERE material_id = ?", (material_id,)
                )
                .fetchone()
            )
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None
        if row is None:
            raise MaterialNotFoundError(material_id)
        try:
            return self._root.decrypt(row[0], row[1], material_id.encode())
        except InvalidTag:
            # Wrong root key, or a wrapped key moved between ids: unusable, never guessed at.
            raise BackendUnavailableError(
                "software keystore: key material does not open under the configured root key"
            ) from None

    def check_root_key(self) -> None:
        """Raise :class:`BackendUnavailableError` unless the configured root key opens the
        stored material (checked on one entry: every entry is wrapped under the same key)."""
        try:
            row = self._connect().execute("SELECT material_id FROM material LIMIT 1").fetchone()
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None
        if row is not None:
            self._cipher(row[0])

    def encrypt(self, material_id: str, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        return self._cipher(material_id).encrypt(nonce, plaintext, aad)

    def decrypt(self, material_id: str, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
        cipher = self._cipher(material_id)
        try:
            return cipher.decrypt(nonce, ciphertext, aad)
        except (InvalidTag, ValueError):
            raise DecryptionFailedError() from None

    def destroy_material(self, material_id: str) -> None:
        self._cache.pop(material_id, None)
        try:
            self._connect().execute("DELETE FROM material WHERE material_id = ?", (material_id,))
        except sqlite3.Error as exc:
            raise BackendUnavailableError(f"software keystore: {exc}") from None

    def generate_random(self, size: int) -> bytes:
        return os.urandom(size)

    def health(self) -> BackendHealth:
        try:
            count = self._connect().execute("SELECT count(*) FROM material").fetchone()[0]
        except (sqlite3.Error, BackendUnavailableError) as exc:
            return BackendHealth("software", False, {"error": exc.__class__.__name__})
        return BackendHealth("software", True, {"materials": int(count)})

    def close(self) -> None:
        connection = getattr(self._local, "connection", None)
        if connection is not None:
            connection.close()
            self._local.connection = None
