"""gunicorn's options and server hooks for mock-kms: one function for both ways to start it.

``mock-kms serve`` (:mod:`kms_service.serving.server`) and ``gunicorn -c
deploy/gunicorn.conf.py`` both take every gunicorn setting from :func:`gunicorn_options`, so
they cannot drift apart: the same worker class, limits, per-worker listeners, the address in
the ``Listening at:`` line, and the metric files of dead workers retired by the master. Both
serve :data:`kms_service.serving.wsgi.application`, built in each worker after fork (its
SQLite connections and PKCS#11 session never cross a fork).

A configuration problem ends the process with status 2 (:data:`EXIT_CONFIGURATION`) on both
paths: the systemd unit's ``RestartPreventExitStatus=2`` relies on it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys
from collections.abc import Mapping
from typing import Any, NoReturn

from gunicorn.glogging import Logger

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

EXIT_CONFIGURATION = 2
REUSE_PORT = hasattr(socket, "SO_REUSEPORT")
#: gunicorn's threaded worker, with gunicorn's own HTTP refusals answered AWS-shaped
#: (docs/http-errors.md); a string, so the master never imports the worker's module.
WORKER_CLASS = "kms_service.serving.http_errors.AwsErrorWorker"
#: Built when each worker loads it, after fork (``mock-kms serve`` builds the same object).
WSGI_APP = "kms_service.serving.wsgi:loaded_application()"
log = logging.getLogger("mock_kms.server")


def exit_on_configuration_error(error: ConfigurationError) -> NoReturn:
    """Print ``mock-kms: error: ...`` (one line) on stderr and exit with status 2."""
    print(f"mock-kms: error: {error}", file=sys.stderr, flush=True)
    raise SystemExit(EXIT_CONFIGURATION)


class ServingLogger(Logger):  # type: ignore[misc]
    """gunicorn's logger, with the address filled into the master's ``Listening at:`` line.

    With ``reuse_port`` every worker opens its own listening sockets and the master has none,
    so gunicorn's own line would name no address.
    """

    def info(self, msg: str, *args: Any, **kwargs: Any) -> None:
        if msg.startswith("Listening at: %s") and args and not args[0]:
            scheme = "https" if self.cfg.is_ssl else "http"
            args = (",".join(f"{scheme}://{bind}" for bind in self.cfg.bind), *args[1:])
        super().info(msg, *args, **kwargs)


def add_worker_listeners(worker: Any) -> None:
    """gunicorn ``post_worker_init``: give this worker a listening socket of its own on each
    TCP address, beside the ones gunicorn opened.

    With one listener per address, the worker that wakes first accepts a whole burst of new
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


def retire_worker_metrics(server: Any, worker: Any) -> None:
    """gunicorn ``child_exit``, in the master: retire a dead worker's live metric files."""
    from kms_service.observability.metrics import mark_worker_dead

    mark_worker_dead(worker.pid)


def gunicorn_options(settings: Settings, *, preflight: bool) -> dict[str, Any]:
    """Every gunicorn setting and server hook that serves ``settings``.

    ``preflight``: check and prepare everything (data directory, root key, database, TLS,
    metrics, faults, seed) in the master's ``on_starting`` hook, exiting with status 2 on a
    problem. ``mock-kms serve`` passes False because it has done so before starting gunicorn.
    """

    def on_starting(server: Any) -> None:
        from kms_service.serving.preflight import preflight as check_and_prepare

        try:
            check_and_prepare(settings)
        except ConfigurationError as error:
            exit_on_configuration_error(error)

    options: dict[str, Any] = {
        "wsgi_app": WSGI_APP,
        "bind": [settings.bind],
        "workers": settings.workers,
        "worker_class": WORKER_CLASS,
        "threads": settings.threads,
        "keepalive": 75,
        "timeout": 60,
        "graceful_timeout": 10,
        # Never build the app in the master: SQLite connections and PKCS#11 handles do not
        # survive fork.
        "preload_app": False,
        "accesslog": None,
        "errorlog": "-",
        "loglevel": settings.log_level,
        "logger_class": ServingLogger,
        "proc_name": "mock-kms",
        "limit_request_line": 8190,
        # gunicorn's control socket defaults to one path per user: two servers on one
        # machine (tests, CI) would fight over it, and nothing here needs it.
        "control_socket_disable": True,
        # With SO_REUSEPORT each worker listens on the address itself, and can add a listener
        # of its own (see add_worker_listeners).
        "reuse_port": REUSE_PORT,
        "post_worker_init": add_worker_listeners,
        "child_exit": retire_worker_metrics,
    }
    if preflight:
        options["on_starting"] = on_starting
    from kms_service.serving.tls import certificate_files

    files = certificate_files(settings)
    if files is not None:
        options["certfile"], options["keyfile"] = str(files[0]), str(files[1])
    return options


def default_workers() -> int:
    """(2 x CPUs) + 1, gunicorn's rule of thumb, kept between 2 and 16: each worker holds
    its own connections and, on an HSM, its own session."""
    return max(2, min(2 * multiprocessing.cpu_count() + 1, 16))


def options_from_environment(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options for ``gunicorn -c deploy/gunicorn.conf.py``: settings from the
    ``MOCK_KMS_*`` environment (workers: :func:`default_workers` unless set), checked in the
    master before it forks. Exits with status 2 and one line for a bad setting."""
    env = os.environ if environ is None else environ
    given = {} if env.get("MOCK_KMS_WORKERS") else {"workers": default_workers()}
    try:
        settings = Settings.from_sources(given, env).validate()
    except ConfigurationError as error:
        exit_on_configuration_error(error)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    return gunicorn_options(settings, preflight=True)
