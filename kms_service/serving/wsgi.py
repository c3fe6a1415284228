"""WSGI entry point, ``kms_service.serving.wsgi:application``, for gunicorn run with its own config
(``gunicorn -c deploy/gunicorn.conf.py``) or any other WSGI server.

Settings come from the ``MOCK_KMS_*`` environment. Nothing happens at import: the app (its
SQLite connections, its PKCS#11 session) is built on first use in the process that serves,
which under gunicorn is a worker after fork (``deploy/gunicorn.conf.py`` loads
``loaded_application()``, which builds it at once). A process forked after building rebuilds
its own.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from wsgiref.types import StartResponse, WSGIEnvironment

from flask import Flask

from kms_service.settings import Settings


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
                from kms_service.serving.app import create_app

                self._app = create_app(settings or Settings.from_sources().validate())
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
