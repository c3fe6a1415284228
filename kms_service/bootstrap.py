"""The wiring: opens the store and the key backends and builds the services and the
authenticator for one process. The only place that knows how the parts fit together; the Flask
factory (:mod:`kms_service.serving.app`), the seed-at-start child and the preflight call it.
"""

from __future__ import annotations

from backends.base import KeyBackend
from backends.software import SoftwareBackend
from kms_service.domain.clock import Clock
from kms_service.domain.errors import ConfigurationError
from kms_service.key_stores.clusters import load_clusters
from kms_service.key_stores.default_store import ensure_default_key_store
from kms_service.key_stores.registry import KeyStoreBackends
from kms_service.operations import Services
from kms_service.operations.material import destroy_pending_material
from kms_service.settings import Settings
from kms_service.store import MetadataStore, StoreError
from kms_service.wire.auth.authenticator import Authenticator
from kms_service.wire.auth.credentials import CredentialStore
from local_secrets.root_key import RootKeyError, load_root_key


def open_backends(settings: Settings) -> dict[str, KeyBackend]:
    """The software keystore (always: it serves keys made on it earlier) and, with
    ``--backend pkcs11``, the PKCS#11 token. Raises :class:`ConfigurationError`."""
    try:
        root_key = load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    backends: dict[str, KeyBackend] = {
        "software": SoftwareBackend(settings.data_dir, root_key, settings.database_url),
    }
    if settings.backend == "pkcs11":
        backends["pkcs11"] = open_pkcs11(settings)
    return backends


def open_pkcs11(settings: Settings) -> KeyBackend:
    """Open the PKCS#11 backend from the settings. Raises :class:`ConfigurationError`."""
    from backends.pkcs11 import Pkcs11Backend
    from backends.pkcs11_session import Pkcs11ConfigError

    if not settings.pkcs11_module or not settings.pkcs11_token_label:
        raise ConfigurationError(
            "--backend pkcs11 needs PKCS11_MODULE and PKCS11_TOKEN_LABEL "
            "(or run `mock-kms softhsm-init --data-dir DIR` and `make run-hsm`)"
        )
    try:
        backend: KeyBackend = Pkcs11Backend.open(
            module=settings.pkcs11_module,
            token_label=settings.pkcs11_token_label,
            pin=settings.pkcs11_pin,
            pin_file=settings.pkcs11_pin_file,
            lock_dir=settings.data_dir,
        )
    except Pkcs11ConfigError as exc:
        raise ConfigurationError(str(exc)) from None
    return backend


def open_key_stores(settings: Settings, store: MetadataStore) -> KeyStoreBackends:
    """This process's access to the custom key stores (docs/custom-key-stores.md): nothing is
    opened until a request uses a store. Raises :class:`ConfigurationError`."""
    try:
        root_key = load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    return KeyStoreBackends(
        store,
        load_clusters(settings),
        root_key,
        settings.data_dir,
        default_store=settings.backend == "pkcs11",
    )


def build_services(settings: Settings) -> Services:
    """Open the store and the backends for this process. Raises :class:`ConfigurationError`."""
    settings.validate()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(settings.data_dir, settings.database_url)
    try:
        store.initialise()
    except StoreError as exc:
        raise ConfigurationError(str(exc)) from None
    clock = Clock(settings.clock_offset_seconds)
    services = Services(
        settings=settings,
        store=store,
        backends=open_backends(settings),
        clock=clock,
        key_stores=open_key_stores(settings, store),
    )
    ensure_default_key_store(store, settings, clock.now(), at_start=False)
    destroy_pending_material(services)
    return services


def build_authenticator(settings: Settings) -> Authenticator:
    credentials = None
    # Open mode reads the file too (when given): its access key ids name identities there.
    if settings.credentials_file is not None:
        credentials = CredentialStore.load(settings.credentials_file, settings.account_id)
    return Authenticator(settings.auth, settings.region, settings.account_id, credentials)
