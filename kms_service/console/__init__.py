"""The web console at ``/console/`` (docs/console.md): keys, their material versions, policies
and tags; every request live; how each S3 object is encrypted; actions through the KMS
operations.

:func:`install_console` runs in each worker, from ``create_app``, after everything else that
wraps ``app.wsgi_app``. It mounts the blueprint, routes ``/console`` ahead of the S3 endpoint
that shares the port (:class:`ConsoleRouter`), and gives the request recorder the feed the
live table reads (:mod:`kms_service.console.feed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Flask

from kms_service.settings import Settings

CONSOLE_PREFIX = "/console"
#: Markers of an AWS-signed request (SigV4 header or presigned query, SigV2): a browser never
#: sends them, an S3 client always does, so such requests for ``/console...`` stay S3's.
_SIGNED_QUERY = ("X-Amz-Signature=", "X-Amz-Credential=", "AWSAccessKeyId=")


def is_console_request(environ: WSGIEnvironment) -> bool:
    """Whether the console answers: an unsigned request for ``/console`` or below.

    A signed request for the same path is path-style S3 for a bucket named ``console`` and
    goes to S3 as before; so does virtual-hosted-style ``console.localhost`` (its path is the
    object key, never ``/console/``-prefixed unless the key is). See docs/console.md.
    """
    path = str(environ.get("PATH_INFO", ""))
    if path != CONSOLE_PREFIX and not path.startswith(CONSOLE_PREFIX + "/"):
        return False
    authorization = str(environ.get("HTTP_AUTHORIZATION", ""))
    if authorization.startswith(("AWS4-", "AWS ")) or environ.get("HTTP_X_AMZ_DATE"):
        return False
    query = str(environ.get("QUERY_STRING", ""))
    if any(marker in query for marker in _SIGNED_QUERY):
        return False
    host = str(environ.get("HTTP_HOST", "")).rsplit(":", 1)[0].lower()
    # Virtual-hosted S3 (``BUCKET.localhost``): the path is an object key.
    return not host.endswith(".localhost")


class ConsoleRouter:
    """WSGI middleware: console requests to the Flask app, everything else downstream."""

    def __init__(self, downstream: WSGIApplication, flask_app: WSGIApplication) -> None:
        self.downstream = downstream
        self.flask_app = flask_app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if is_console_request(environ):
            return self.flask_app(environ, start_response)
        return self.downstream(environ, start_response)


def install_console(app: Flask, settings: Settings) -> None:
    """Mount the console when :func:`~kms_service.console.safety.decide_access` allows it.

    Raises :class:`~kms_service.domain.errors.ConfigurationError`.
    """
    from kms_service.console.safety import decide_access

    access = decide_access(settings)
    if not access.enabled:
        return
    from kms_service.console import guard
    from kms_service.console.feed import RequestFeed
    from kms_service.console.pages import console
    from kms_service.console.safety import load_secrets, state_directory
    from kms_service.console.sessions import ConsoleSessionInterface
    from kms_service.observability.recording import RECORD_EXTENSION, RequestRecorder

    secrets = load_secrets(settings)
    app.extensions[guard.ACCESS_EXTENSION] = access
    app.extensions[guard.SECRETS_EXTENSION] = secrets
    # Not app.secret_key: see kms_service.console.sessions.
    app.session_interface = ConsoleSessionInterface(secrets.session_key)
    app.config.update(
        SESSION_COOKIE_NAME="mock_kms_console",
        SESSION_COOKIE_PATH=CONSOLE_PREFIX,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        SESSION_COOKIE_SECURE=settings.tls_enabled,
    )
    app.register_blueprint(console)
    recorder: RequestRecorder | None = app.extensions.get(RECORD_EXTENSION)
    if recorder is not None:
        recorder.attach_feed(RequestFeed(state_directory(settings), settings.region))
    flask_wsgi: WSGIApplication = partial(Flask.wsgi_app, app)  # the app, unwrapped
    app.wsgi_app = ConsoleRouter(app.wsgi_app, flask_wsgi)  # type: ignore[method-assign]
