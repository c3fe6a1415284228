"""WSGI entry point, ``kms_service.serving.wsgi:application``, for gunicorn run with its own config
(``gunicorn -c deploy/gunicorn.conf.py``) or any other WSGI server.

Settings come from the ``MOCK_KMS_*`` environment. Nothing happens at import: the app (its
SQLite connections, its PKCS#11 session) is built on first use in the process that serves,
which under gunicorn is a worker after fork (``deploy/gunicorn.conf.py`` loads
``loaded_application()``, which builds it at once). A process forked after building rebuilds
its own.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from flask import Flask

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

log = logging.getLogger("mock_kms.serving")

#: How long a process waits for a shared database that does not answer before its boot
#: fails (under gunicorn's 60 s worker timeout, so the worker reports it itself).
DATABASE_WAIT_S = 50.0


def _create_app(settings: Settings) -> Flask:
    """The app for ``settings``; with a database URL, waits (up to DATABASE_WAIT_S) while
    the database does not answer rather than fail at once.

    Why: a gunicorn worker whose boot fails makes gunicorn stop the whole host. A worker
    started while PostgreSQL restarts (a worker recycled, or killed and respawned) must
    wait for it: the other hosts and workers ride the outage out, and so must this one.
    Raises :class:`ConfigurationError` for anything else at once, and for a database still
    silent after the wait.
    """
    from kms_service.serving.app import create_app

    deadline = time.monotonic() + DATABASE_WAIT_S
    answered = False
    while True:
        try:
            return create_app(settings)
        except ConfigurationError:
            if settings.database_url is None or time.monotonic() >= deadline:
                raise
            from database import open_database

            if open_database(settings.database_url).health().ok:
                if answered:
                    raise  # it failed with the database answering: a real error
                # It may have failed before the database came back: once more.
                answered = True
                continue
            answered = False
            log.warning("process %d: the database does not answer; waiting", os.getpid())
            time.sleep(1.0)


class LazyApplication:
    """A WSGI callable that builds the real app once per process."""

    def __init__(self) -> None:
        self._app: Flask | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def load(self, settings: Settings | None = None) -> Flask:
        """The app for this process, built on first call from ``settings`` (default: the
        ``MOCK_KMS_*`` environment).

        Raises :class:`~kms_service.domain.errors.ConfigurationError` for bad settings.
        """
        app = self._app
        if app is not None and self._pid == os.getpid():
            return app
        with self._lock:
            if self._app is None or self._pid != os.getpid():
                self._app = _create_app(settings or Settings.from_sources().validate())
                self._pid = os.getpid()
            return self._app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        return self.load().wsgi_app(environ, start_response)


application = LazyApplication()


def loaded_application() -> LazyApplication:
    """:data:`application`, built now from the environment. gunicorn calls this in each worker
    after fork (``wsgi_app`` in ``deploy/gunicorn.conf.py``), so that a broken configuration
    fails the worker's boot, not its first request."""
    application.load()
    return application
