"""A private loopback listener, one per worker process, through which the S3 side calls
this server's own KMS over HTTP.

Why not the public address: gunicorn gives each worker a fixed pool of threads. An S3 request
holds one while it waits for its KMS call; if every thread is held that way (ten concurrent
SSE-KMS part uploads against 2 workers x 4 threads is enough), the KMS calls queue behind the
very requests waiting for them and everything stalls until the timeouts fire. This listener
has its own threads, so a KMS call from S3 is always served. It serves the same KMS
application object (same database, keys and wire layer), so it *is* this server's KMS, reached
through the thin client and the real wire protocol.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterable
from typing import Any
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from kms_service.wire.auth.authenticator import TRUSTED_LOOPBACK

log = logging.getLogger("mock_kms.s3")


class _QuietHandler(WSGIRequestHandler):
    """No access log line per internal KMS call."""

    def log_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _trusted(app: WSGIApplication) -> WSGIApplication:
    """Mark every request of this listener as S3's own, in an environ key no HTTP header can
    set: the KMS then takes the caller S3 names instead of checking a signature again (S3 has
    checked it) and sees ``kms:ViaService`` (docs/access-control.md, "S3")."""

    def marked(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        environ[TRUSTED_LOOPBACK] = True
        return app(environ, start_response)

    return marked


class LoopbackKms:
    """Starts on first use in the process that uses it (never in the gunicorn master, and
    again after a fork, since threads do not survive one)."""

    def __init__(self, app: WSGIApplication) -> None:
        self._app = _trusted(app)
        self._lock = threading.Lock()
        self._server: BaseWSGIServer | None = None
        self._pid = 0

    def endpoint(self) -> str:
        """``http://127.0.0.1:<port>`` of this process's listener, started if needed."""
        with self._lock:
            if self._server is None or self._pid != os.getpid():
                server = make_server(
                    "127.0.0.1", 0, self._app, threaded=True, request_handler=_QuietHandler
                )
                thread = threading.Thread(
                    target=server.serve_forever, name="mock-kms-s3-loopback", daemon=True
                )
                thread.start()
                self._server, self._pid = server, os.getpid()
                log.debug("S3 loopback KMS listening on port %d", server.server_port)
            return f"http://127.0.0.1:{self._server.server_port}"

    def close(self) -> None:
        with self._lock:
            if self._server is not None and self._pid == os.getpid():
                self._server.shutdown()
                self._server.server_close()
            self._server = None
