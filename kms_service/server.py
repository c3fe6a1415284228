"""Running the app under gunicorn, embedded (no separate config file needed)."""

from __future__ import annotations

from typing import Any

from gunicorn.app.base import BaseApplication

from kms_service.settings import Settings
from kms_service.tls import certificate_files


class MockKmsServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with threaded workers (keep-alive connections), app loaded after fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": [self.settings.bind],
            "workers": self.settings.workers,
            "worker_class": "gthread",
            "threads": self.settings.threads,
            "keepalive": 75,
            "timeout": 60,
            "graceful_timeout": 10,
            "preload_app": False,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": self.settings.log_level,
            "proc_name": "mock-kms",
            "limit_request_line": 8190,
            # gunicorn's control socket defaults to one path per user: two servers on one
            # machine (tests, CI) would fight over it, and nothing here needs it.
            "control_socket_disable": True,
        }
        files = certificate_files(self.settings)
        if files is not None:
            options["certfile"], options["keyfile"] = str(files[0]), str(files[1])
        for name, value in options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        from kms_service.app import create_app

        return create_app(self.settings)


def run_gunicorn(settings: Settings) -> int:
    """Serve until stopped; returns gunicorn's exit status (0 on a clean shutdown)."""
    try:
        MockKmsServer(settings).run()
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0
