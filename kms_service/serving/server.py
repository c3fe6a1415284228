"""Running the app under gunicorn, embedded (``mock-kms serve``; no config file needed).

Every gunicorn option comes from :func:`~kms_service.serving.gunicorn_options.gunicorn_options`,
the same function ``deploy/gunicorn.conf.py`` uses.
"""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from kms_service.serving.gunicorn_options import gunicorn_options
from kms_service.settings import Settings


class MockKmsServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with threaded workers (keep-alive connections), app built after fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        # The CLI has checked and prepared everything before gunicorn starts.
        for name, value in gunicorn_options(self.settings, preflight=False).items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from kms_service.serving.wsgi import application

        application.load(self.settings)  # in the worker, after fork
        return application


def run_gunicorn(settings: Settings) -> int:
    """Serve until stopped; returns gunicorn's exit status (0 on a clean shutdown)."""
    try:
        MockKmsServer(settings).run()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
