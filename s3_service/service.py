"""Wiring the S3 endpoint into ``mock-kms serve``: preparing its state before the workers
fork (:func:`prepare_s3`) and mounting it beside the KMS in each worker (:func:`mount_s3`).

The S3 state lives in ``--s3-dir`` (default ``<data-dir>/s3/``): ``s3.sqlite3`` (metadata,
unless ``--database-url`` puts it in PostgreSQL), ``master-key.bin`` (the SSE-S3 master key,
wrapped under the root key), ``blobs/`` (encrypted segments) and ``tmp/`` (writes in
progress). Every host of one database mounts the same S3 directory.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flask import Flask

from clients.kms import KmsLocalError
from clients.kms.config import resolve_credentials
from database import DatabaseError
from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings
from kms_service.wire.auth.credentials import CredentialStore
from local_secrets.root_key import RootKeyError, load_root_key
from s3_service.auth import S3Authenticator
from s3_service.blobs import BlobStore
from s3_service.encryption import KeyService
from s3_service.kms_loopback import LoopbackKms
from s3_service.routing import S3Application, TargetRouter
from s3_service.services import S3Services
from s3_service.sse_kms import KmsGateway
from s3_service.sse_s3 import MasterKeyError, SseS3Keys, load_master_key
from s3_service.store import S3Store

log = logging.getLogger("mock_kms.s3")
S3_DIRECTORY = "s3"
#: Leftovers younger than this are kept by the startup sweep: they may belong to another
#: server process sharing the data directory, mid-write.
SWEEP_GRACE_SECONDS = 600.0


def s3_directory(settings: Settings) -> Path:
    """``--s3-dir``, else ``<data-dir>/s3``: shared by every host of one database."""
    return settings.s3_dir if settings.s3_dir is not None else settings.data_dir / S3_DIRECTORY


def _root_key(settings: Settings) -> bytes:
    try:
        return load_root_key(settings.data_dir, settings.root_key, create=True)
    except RootKeyError as exc:
        raise ConfigurationError(str(exc)) from None


def _master_key(settings: Settings) -> bytes:
    try:
        return load_master_key(s3_directory(settings), _root_key(settings), create=True)
    except MasterKeyError as exc:
        raise ConfigurationError(str(exc)) from None


def prepare_s3(settings: Settings) -> int:
    """Before the workers start: create the directories, the schema and the master key, and
    sweep files left by interrupted writes. Returns how many leftovers were removed.

    Raises :class:`ConfigurationError` (unusable directory, root key or master key).
    """
    directory = s3_directory(settings)
    blobs = BlobStore(directory)
    store = S3Store(directory, settings.database_url)
    try:
        blobs.initialise()
        store.initialise()
        _master_key(settings)
        removed = blobs.sweep(store.referenced_blobs(), grace_seconds=SWEEP_GRACE_SECONDS)
    except (OSError, DatabaseError) as exc:
        raise ConfigurationError(f"cannot prepare the S3 state in {directory}: {exc}") from None
    finally:
        store.dispose()  # nothing of the database may cross the workers' fork
    if removed:
        log.info("removed %d leftover file(s) of interrupted S3 writes", removed)
    return removed


def _kms_gateway(settings: Settings, loopback: LoopbackKms) -> KmsGateway:
    """How S3 reaches the KMS: this server's own KMS through the loopback listener, or
    ``--s3-kms-endpoint``.

    Credentials: against our own KMS, S3 calls as the S3 caller (same access key id, so the
    same identity and account, over the trusted loopback); against another KMS with the
    server's AWS credentials (environment or profile) when it has any, else as the caller.
    """
    endpoint = settings.s3_kms_endpoint
    if endpoint is None:
        # This server's own KMS: S3 calls it as the caller, in both auth modes, so key
        # policies decide for the S3 caller as on AWS (docs/access-control.md, "S3").
        return KmsGateway(loopback.endpoint, forward_caller=True)
    try:
        has_credentials = resolve_credentials() is not None
    except KmsLocalError as exc:
        raise ConfigurationError(f"S3's KMS credentials: {exc}") from None
    verify: bool | str = os.environ.get("AWS_CA_BUNDLE") or True
    external = endpoint.rstrip("/")
    return KmsGateway(lambda: external, forward_caller=not has_credentials, verify=verify)


def build_s3_services(settings: Settings, kms_app: Flask) -> S3Services:
    """The S3 dependencies for this worker. Raises :class:`ConfigurationError`."""
    directory = s3_directory(settings)
    blobs = BlobStore(directory)
    store = S3Store(directory, settings.database_url)
    try:
        blobs.initialise()
        store.initialise()
    except (OSError, DatabaseError) as exc:
        raise ConfigurationError(f"cannot open the S3 state in {directory}: {exc}") from None
    loopback = LoopbackKms(kms_app.wsgi_app)
    kms_app.extensions["mock_kms.s3_loopback"] = loopback
    keys = KeyService(SseS3Keys(_master_key(settings)), _kms_gateway(settings, loopback))
    return S3Services(
        store=store,
        blobs=blobs,
        keys=keys,
        default_region=settings.region,
        default_account=settings.account_id,
        allow_sse_c_over_http=settings.allow_sse_c_over_http,
        authenticator=_authenticator(settings),
    )


def _authenticator(settings: Settings) -> S3Authenticator:
    """The S3 side checks signatures against the same credentials file as the KMS side."""
    credentials = None
    if settings.credentials_file is not None:
        credentials = CredentialStore.load(settings.credentials_file, settings.account_id)
    return S3Authenticator(settings.auth, credentials)


def mount_s3(app: Flask, settings: Settings) -> None:
    """Put the S3 endpoint in front of the KMS app: requests without ``X-Amz-Target`` go to
    S3, KMS requests reach the app's original WSGI callable unchanged.

    Raises :class:`ConfigurationError`.
    """
    services = build_s3_services(settings, app)
    app.extensions["mock_kms.s3"] = services
    app.wsgi_app = TargetRouter(app.wsgi_app, S3Application(services))  # type: ignore[method-assign]
