"""The Flask application factory. Nothing reads configuration at import time.

``create_app`` runs in each gunicorn worker after fork (the app is not preloaded), so every
process opens its own SQLite connections and, on the PKCS#11 backend, its own library handle.
"""

from __future__ import annotations

import logging

from flask import Flask

from backends.base import KeyBackend
from backends.software import RootKeyError, SoftwareBackend, load_root_key
from kms_service.clock import Clock
from kms_service.errors import ConfigurationError
from kms_service.operations import Services
from kms_service.operations.material import destroy_pending_material
from kms_service.settings import Settings
from kms_service.store import MetadataStore, StoreError
from kms_service.wire.auth import Authenticator, CredentialStore
from kms_service.wire.blueprint import blueprint

log = logging.getLogger("mock_kms")


def open_backends(settings: Settings) -> dict[str, KeyBackend]:
    """The software keystore (always: it serves keys made on it earlier) and, with
    ``--backend pkcs11``, the PKCS#11 token. Raises :class:`ConfigurationError`."""
    try:
        root_key = load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None
    backends: dict[str, KeyBackend] = {
        "software": SoftwareBackend(settings.data_dir, root_key),
    }
    if settings.backend == "pkcs11":
        backends["pkcs11"] = open_pkcs11(settings)
    return backends


def open_pkcs11(settings: Settings) -> KeyBackend:
    """Open the PKCS#11 backend from the settings. Raises :class:`ConfigurationError`."""
    from backends.pkcs11 import Pkcs11Backend, Pkcs11ConfigError

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


def build_services(settings: Settings) -> Services:
    """Open the store and the backends for this process. Raises :class:`ConfigurationError`."""
    settings.validate()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    store = MetadataStore(settings.data_dir)
    try:
        store.initialise()
    except StoreError as exc:
        raise ConfigurationError(str(exc)) from None
    services = Services(
        settings=settings,
        store=store,
        backends=open_backends(settings),
        clock=Clock(settings.clock_offset_seconds),
    )
    destroy_pending_material(services)
    return services


def build_authenticator(settings: Settings) -> Authenticator:
    credentials = None
    if settings.auth == "sigv4" and settings.credentials_file is not None:
        credentials = CredentialStore.load(settings.credentials_file, settings.account_id)
    return Authenticator(settings.auth, settings.region, settings.account_id, credentials)


def create_app(settings: Settings) -> Flask:
    """A ready WSGI app for ``settings``. Raises :class:`ConfigurationError`."""
    app = Flask("mock_kms")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.extensions["mock_kms.services"] = build_services(settings)
    app.extensions["mock_kms.authenticator"] = build_authenticator(settings)
    app.register_blueprint(blueprint)
    if settings.s3_enabled:
        # S3 sits beside the KMS: requests without X-Amz-Target go to it (see s3_service.routing).
        from s3_service.service import mount_s3

        mount_s3(app, settings)
    from kms_service.operability import install

    install(app, settings)  # metrics, audit, faults, dev endpoints: wraps app.wsgi_app last
    return app
