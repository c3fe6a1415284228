"""Wiring the operability features into the service.

* :func:`prepare` runs in the gunicorn master before it forks (from the CLI's preflight and
  from ``deploy/gunicorn.conf.py``): the metrics directory, the fault-rules file, the seed.
* :func:`install` runs in each worker, in ``create_app``: the shared clock, ``GET /metrics``,
  the audit log, fault injection and the ``/_mock-kms/`` developer endpoints.

``GET /metrics`` and ``/_mock-kms/`` are routed to the KMS app ahead of the S3 endpoint that
shares the port (S3 would read them as a bucket); ``/_mock-kms/`` answers 404 unless
``MOCK_KMS_DEV_ENDPOINTS=1``. A virtual-hosted S3 request (``Host: BUCKET.localhost``) always
goes to S3: its path is an object key.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterable
from functools import partial
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Flask, Response, current_app

from database import DatabaseError
from kms_service.admin.endpoints import ADMIN_PREFIX, admin_blueprint
from kms_service.admin.faults import FaultConfigError, FaultInjector, load_rules_file, rules_to_json
from kms_service.domain.errors import ConfigurationError, NotFoundException
from kms_service.observability.audit import AuditLog
from kms_service.observability.metrics import RequestMetrics, prepare_multiprocess_dir
from kms_service.observability.recording import RECORD_EXTENSION, RequestRecorder
from kms_service.operations import Services
from kms_service.operations.shared_settings import CLOCK_OFFSET, FAULTS, attach_shared_settings
from kms_service.settings import Settings
from kms_service.store import MetadataStore, StoreError
from kms_service.wire.protocol import encode_error, new_request_id

log = logging.getLogger("mock_kms")
METRICS_PATH = "/metrics"
_DEV_ENDPOINTS_OFF = NotFoundException(
    "The developer endpoints are off: start mock-kms with MOCK_KMS_DEV_ENDPOINTS=1."
)


def prepare(settings: Settings) -> None:
    """Master-side preparation, before any worker exists. Raises :class:`ConfigurationError`."""
    if settings.faults_file is not None and not settings.dev_endpoints:
        raise ConfigurationError(
            "--faults-file/MOCK_KMS_FAULTS_FILE needs the developer endpoints: set "
            "MOCK_KMS_DEV_ENDPOINTS=1"
        )
    if settings.audit_log not in (None, "-"):
        try:
            os.close(os.open(settings.audit_log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600))
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the audit log {settings.audit_log}: {exc.strerror}"
            ) from None
    prepare_multiprocess_dir()
    _store_fault_rules(settings)
    if settings.seed is not None:
        from kms_service.seeding.startup import reconcile_seed_at_start

        reconcile_seed_at_start(settings)


def _store_fault_rules(settings: Settings) -> None:
    """Start with the rules file's rules, or none: rules never outlive the run that set
    them. Warn about a clock moved in an earlier run (the offset is kept with the data)."""
    rules_json = None
    if settings.faults_file is not None:
        try:
            rules_json = rules_to_json(load_rules_file(settings.faults_file)) or None
        except FaultConfigError as exc:
            raise ConfigurationError(str(exc)) from None
    store = MetadataStore(settings.data_dir, settings.database_url)
    try:
        store.initialise()
        with store.write():
            store.set_service_setting(FAULTS, rules_json)
        moved = store.service_settings().get(CLOCK_OFFSET)
    except (DatabaseError, StoreError) as exc:
        raise ConfigurationError(f"cannot write {store.description}: {exc}") from None
    finally:
        store.dispose()
    if moved and float(moved):
        log.warning(
            "the service clock runs %.1f days ahead (moved by `mock-kms clock advance`; "
            "`mock-kms clock reset` sets it back)",
            float(moved) / 86400,
        )


class OperabilityRouter:
    """WSGI middleware: ``GET /metrics`` and ``/_mock-kms/`` to the KMS Flask app (404 for the
    latter when the developer endpoints are off); everything else to ``downstream``."""

    def __init__(
        self,
        downstream: WSGIApplication,
        flask_app: WSGIApplication,
        dev: bool,
        names_bucket: Callable[[str], str | None] | None = None,
    ) -> None:
        self.downstream = downstream
        self.flask_app = flask_app
        self.dev = dev
        self.names_bucket = names_bucket

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if self.names_bucket is not None and self.names_bucket(str(environ.get("HTTP_HOST", ""))):
            # Virtual-hosted S3 (Host: BUCKET.localhost): the path is an object key.
            return self.downstream(environ, start_response)
        path = str(environ.get("PATH_INFO", ""))
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            if not self.dev:
                return _developer_endpoints_off(start_response)
            return self.flask_app(environ, start_response)
        if (
            path == METRICS_PATH
            and environ.get("REQUEST_METHOD") in ("GET", "HEAD")
            and not environ.get("QUERY_STRING")  # with a query: S3's ListObjects on "metrics"
        ):
            return self.flask_app(environ, start_response)
        return self.downstream(environ, start_response)


def install(app: Flask, settings: Settings) -> None:
    """Worker-side wiring (see the module docstring). Call after everything else that wraps
    ``app.wsgi_app``. Raises :class:`ConfigurationError` if the audit log cannot be opened."""
    services: Services = app.extensions["mock_kms.services"]
    shared = attach_shared_settings(services)
    metrics = RequestMetrics()
    app.extensions["mock_kms.shared_settings"] = shared
    app.extensions["mock_kms.metrics"] = metrics
    audit = None
    if settings.audit_log is not None:
        try:
            audit = AuditLog(settings.audit_log)
        except OSError as exc:
            raise ConfigurationError(
                f"cannot write the audit log {settings.audit_log}: {exc.strerror}"
            ) from None
    if settings.dev_endpoints:
        injector = FaultInjector(shared, on_fault=metrics.fault)
        app.extensions["mock_kms.faults"] = injector
        app.extensions["mock_kms.before_operation"] = injector.before_operation
        app.register_blueprint(admin_blueprint)
    app.add_url_rule(METRICS_PATH, "mock_kms_metrics", partial(_metrics_view, metrics))
    # Recorded by the wire layer's dispatch, once per KMS request (no generic request hooks).
    app.extensions[RECORD_EXTENSION] = RequestRecorder(metrics, audit, settings.region)
    flask_wsgi: WSGIApplication = partial(Flask.wsgi_app, app)  # the app, unwrapped
    names_bucket = None
    if settings.s3_enabled:
        from s3_service.wire import bucket_from_host

        names_bucket = bucket_from_host
    app.wsgi_app = OperabilityRouter(  # type: ignore[method-assign]
        app.wsgi_app, flask_wsgi, settings.dev_endpoints, names_bucket
    )


def _metrics_view(metrics: RequestMetrics) -> Response:
    body, content_type = metrics.render(current_app.extensions["mock_kms.services"])
    return Response(body, content_type=content_type)


def _developer_endpoints_off(start_response: StartResponse) -> Iterable[bytes]:
    """404 in the KMS's error shape (``__type``, ``message``, request id), like every other
    answer of this server, saying how to turn the endpoints on."""
    body = encode_error(_DEV_ENDPOINTS_OFF)
    start_response(
        "404 Not Found",
        [
            ("Content-Type", "application/x-amz-json-1.1"),
            ("Content-Length", str(len(body))),
            ("x-amzn-RequestId", new_request_id()),
            ("X-Amzn-ErrorType", _DEV_ENDPOINTS_OFF.code),
        ],
    )
    return [body]
