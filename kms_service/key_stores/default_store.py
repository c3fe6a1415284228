"""The default key store, ``cks-mock-kms-pkcs11``: the token of ``--backend pkcs11``
(``PKCS11_MODULE``, ``PKCS11_TOKEN_LABEL``, ``PKCS11_PIN``/``PKCS11_PIN_FILE``), listed by
DescribeCustomKeyStores in every account and region (docs/custom-key-stores.md)."""

from __future__ import annotations

from kms_service.key_stores.clusters import (
    DEFAULT_CLUSTER_ID,
    DEFAULT_KEY_STORE_ID,
    DEFAULT_KEY_STORE_NAME,
)
from kms_service.key_stores.registry import CONNECTED
from kms_service.settings import Settings
from kms_service.store import KeyStoreRecord, MetadataStore


def ensure_default_key_store(
    store: MetadataStore, settings: Settings, now: float, *, at_start: bool
) -> None:
    """With ``--backend pkcs11``, make sure the default store exists; ``at_start`` (the
    service starting, once, before any worker) also connects it, since the token was just
    checked. A worker that restarts keeps whatever state the store has (an operator's
    DisconnectCustomKeyStore survives it)."""
    if settings.backend != "pkcs11":
        return
    with store.write():
        inserted = store.insert_key_store(
            KeyStoreRecord(
                store_id=DEFAULT_KEY_STORE_ID,
                account_id="",
                region="",
                name=DEFAULT_KEY_STORE_NAME,
                store_type="AWS_CLOUDHSM",
                cluster_id=DEFAULT_CLUSTER_ID,
                trust_anchor="",
                password_nonce=None,
                password_wrapped=None,
                connection_state=CONNECTED,
                connection_error=None,
                connection_epoch=1,
                creation_date=now,
            )
        )
        if at_start and not inserted:
            record = store.get_key_store(DEFAULT_KEY_STORE_ID)
            epoch = record.connection_epoch + 1 if record is not None else 1
            store.update_key_store(
                DEFAULT_KEY_STORE_ID,
                connection_state=CONNECTED,
                connection_error=None,
                connection_epoch=epoch,
            )
