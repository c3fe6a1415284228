"""Running the app under gunicorn, embedded (no separate config file needed)."""

from __future__ import annotations

import logging
import socket
from typing import Any

from gunicorn.app.base import BaseApplication

from kms_service.serving.tls import certificate_files
from kms_service.settings import Settings

log = logging.getLogger("mock_kms.server")
REUSE_PORT = hasattr(socket, "SO_REUSEPORT")


def add_worker_listeners(worker: Any) -> None:
    """gunicorn ``post_worker_init``: give this worker a listening socket of its own on each
    TCP address, beside the one all workers share.

    With only the shared socket, the worker that wakes first accepts a whole burst of new
    connections (a client opening 16 at once landed 16-0 or 15-1 on two workers), and
    keep-alive pins them there: one process, one core under the GIL, serves them all while
    the other idles, halving throughput and doubling p99. The kernel spreads new connections
    evenly over the listeners of a SO_REUSEPORT group, so most of them now land evenly. A
    failure here only costs the balancing, never the worker.
    """
    if not REUSE_PORT:
        return
    own: list[socket.socket] = []
    for shared in worker.sockets:
        if shared.family not in (socket.AF_INET, socket.AF_INET6):
            continue
        listener = socket.socket(shared.family, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            # As gunicorn sets on its own listener: without it, small responses wait for
            # delayed ACKs (40 ms).
            listener.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            listener.bind(shared.getsockname())
            listener.listen(worker.cfg.backlog)
        except OSError as exc:
            listener.close()
            log.warning("worker %s: no listener of its own (%s); sharing only", worker.pid, exc)
            continue
        own.append(listener)
    worker.sockets = [*worker.sockets, *own]


class MockKmsServer(BaseApplication):  # type: ignore[misc]
    """gunicorn with threaded workers (keep-alive connections), app loaded after fork."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        super().__init__()

    def load_config(self) -> None:
        options: dict[str, Any] = {
            "bind": [self.settings.bind],
            "workers": self.settings.workers,
            "worker_class": "kms_service.serving.http_errors.AwsErrorWorker",
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
            # With SO_REUSEPORT on the shared socket, each worker can add a listener of its own
            # on the same address (see add_worker_listeners).
            "reuse_port": REUSE_PORT,
            "post_worker_init": add_worker_listeners,
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
