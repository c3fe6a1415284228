"""gunicorn configuration for mock-kms: ``gunicorn -c deploy/gunicorn.conf.py``.

Serves ``kms_service.serving.wsgi:application`` with the settings of the ``MOCK_KMS_*`` environment
(the same variables as ``mock-kms serve``; see the README). The master checks everything and
reconciles the seed file before forking (``on_starting``); each worker builds the app, and so
opens its own database connections and PKCS#11 session, right after fork (``post_fork``),
never before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
from typing import Any

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

try:
    _settings = Settings.from_sources().validate()
except ConfigurationError as _error:
    sys.exit(f"mock-kms: error: {_error}")

logging.basicConfig(
    level=_settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
)


def _default_workers() -> int:
    """(2 x CPUs) + 1, gunicorn's rule of thumb, kept between 2 and 16: each worker holds
    its own connections and, on an HSM, its own session."""
    return max(2, min(2 * multiprocessing.cpu_count() + 1, 16))


wsgi_app = "kms_service.serving.wsgi:application"
bind = [_settings.bind]
workers = (
    int(os.environ["MOCK_KMS_WORKERS"])
    if os.environ.get("MOCK_KMS_WORKERS")
    else _default_workers()
)
worker_class = "kms_service.serving.http_errors.AwsErrorWorker"  # gthread, AWS-shaped errors
threads = _settings.threads
keepalive = 75
timeout = 60
graceful_timeout = 10
# Never build the app in the master: SQLite connections and PKCS#11 handles do not survive fork.
preload_app = False
accesslog = None
errorlog = "-"
loglevel = _settings.log_level
proc_name = "mock-kms"
control_socket_disable = True

if _settings.tls_enabled:
    from kms_service.serving.tls import certificate_files

    _files = certificate_files(_settings)
    if _files is not None:
        certfile, keyfile = str(_files[0]), str(_files[1])


def on_starting(server: Any) -> None:
    """In the master, before the listening socket and the workers: the data directory, the
    root key, the database, TLS, metrics, fault rules and the seed file."""
    from kms_service.serving.cli import preflight

    try:
        preflight(_settings)
    except ConfigurationError as error:
        server.log.error("mock-kms: error: %s", error)
        sys.exit(2)


def post_fork(server: Any, worker: Any) -> None:
    """In each new worker: build the app now, so its store and backends (a PKCS#11 session)
    belong to this process, and a broken configuration fails the boot, not a request."""
    from kms_service.serving.wsgi import application

    application.load()


def child_exit(server: Any, worker: Any) -> None:
    """In the master, when a worker exits: retire its live metric files."""
    from kms_service.observability.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)
