"""Everything that can be checked before gunicorn forks, shared by ``mock-kms serve`` and
``gunicorn -c deploy/gunicorn.conf.py``: bad configuration is one line and exit status 2 in
the master, never a worker that fails to boot."""

from __future__ import annotations

import socket

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings


def preflight(settings: Settings) -> None:
    """Everything that can be checked before forking: the data directory, the root key, the
    database, the credentials file. Raises :class:`ConfigurationError`."""
    from kms_service.bootstrap import build_authenticator
    from kms_service.store import MetadataStore, StoreError
    from local_secrets.root_key import RootKeyError, load_root_key

    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigurationError(f"cannot create --data-dir {settings.data_dir}: {exc}") from None
    try:
        root_key = load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    check_software_keystore(settings, root_key)
    store = MetadataStore(settings.data_dir, settings.database_url)
    try:
        store.initialise()
    except StoreError as exc:
        raise ConfigurationError(str(exc)) from None
    finally:
        store.dispose()  # nothing of the database may cross the workers' fork
    build_authenticator(settings)
    if settings.backend == "pkcs11":
        # Checked in a child process: the gunicorn master never loads the PKCS#11 module.
        from kms_service.bootstrap import open_pkcs11

        open_pkcs11(settings)
    # --- custom key stores (docs/custom-key-stores.md): the cluster map parses, and the
    # default store (the token just checked) starts CONNECTED.
    from kms_service.domain.clock import Clock
    from kms_service.key_stores.clusters import load_clusters
    from kms_service.key_stores.default_store import ensure_default_key_store

    load_clusters(settings)
    store = MetadataStore(settings.data_dir, settings.database_url)
    try:
        now = Clock(settings.clock_offset_seconds).now()
        ensure_default_key_store(store, settings, now, at_start=True)
    finally:
        store.dispose()
    # --- end of custom key stores
    preflight_tls_and_s3(settings)
    check_bind(settings.bind)
    from kms_service.serving.operability import prepare

    prepare(settings)  # metrics directory, fault rules, seed (before any worker forks)
    # Web console: a fresh sign-in token per start, printed once (kms_service.console).
    from kms_service.console.safety import prepare_console

    prepare_console(settings)


def check_software_keystore(settings: Settings, root_key: bytes) -> None:
    """Open (and create) the software keystore once, then close it before any fork: a
    corrupt keystore file or a root key that does not open its material is one line here,
    not a worker that fails to boot or keys that fail at run time."""
    from backends.base import BackendError
    from backends.software import KEYSTORE_FILE, SoftwareBackend

    try:
        keystore = SoftwareBackend(settings.data_dir, root_key, settings.database_url)
        try:
            # A different root key would make every key unusable at run time: say so now.
            keystore.check_root_key()
        finally:
            keystore.dispose()
    except BackendError as exc:
        where = (
            "the software keystore"
            if settings.database_url
            else str(settings.data_dir / KEYSTORE_FILE)
        )
        raise ConfigurationError(f"cannot open {where}: {exc}") from None


def check_bind(bind: str) -> None:
    """Fail fast, in one line, when ``bind`` cannot be listened on (port in use, address not
    local, unknown host), instead of gunicorn's five retries. Raises ConfigurationError."""
    host, _, port = bind.rpartition(":")
    host = host.strip("[]")
    try:
        infos = socket.getaddrinfo(
            host, int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, kind, proto, _, address = infos[0]
        with socket.socket(family, kind, proto) as probe:
            # As gunicorn does, so that a port in TIME_WAIT is not reported as busy.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise ConfigurationError(f"cannot listen on --bind {bind}: {reason}") from None


def preflight_tls_and_s3(settings: Settings) -> None:
    """Generate the ``--tls`` certificate and prepare the S3 state (its master key, leftovers
    of interrupted writes) before any worker starts. Raises :class:`ConfigurationError`."""
    from kms_service.serving.tls import ensure_certificate

    ensure_certificate(settings)
    if settings.s3_enabled:
        from s3_service.service import prepare_s3

        prepare_s3(settings)
