"""The Flask blueprint: X-Amz-Target dispatch, authentication, schemas, AWS-shaped errors.

Knows HTTP, knows nothing of keys: every operation is delegated to
:mod:`kms_service.operations`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from time import perf_counter
from typing import Any
from urllib.parse import quote
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from flask import Blueprint, Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException, InternalServerError, RequestEntityTooLarge
from werkzeug.wrappers import Request

from kms_service.access.request import AccessScope
from kms_service.domain.errors import (
    KmsError,
    UnknownOperationException,
    UnsupportedOperationException,
)
from kms_service.observability.recording import RECORD_EXTENSION, RequestRecorder
from kms_service.operations import KNOWN_UNIMPLEMENTED, OPERATIONS, RequestScope, Services
from kms_service.operations.authorization import authorize_request, require_authorized
from kms_service.wire.auth.authenticator import TRUSTED_LOOPBACK, Authenticator, Caller
from kms_service.wire.failures import error_for_failure
from kms_service.wire.protocol import (
    CONTENT_TYPE,
    encode_error,
    encode_result,
    new_request_id,
    operation_name,
    parse_body,
    read_body,
    too_large_error,
)
from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import load_request

log = logging.getLogger("mock_kms.wire")
blueprint = Blueprint("kms", __name__)
_SCHEMA_INSTANCES = {name: schema() for name, schema in SCHEMAS.items()}


def _services() -> Services:
    services: Services = current_app.extensions["mock_kms.services"]
    return services


def _response(status: int, body: bytes, request_id: str, error_type: str | None = None) -> Response:
    headers = {"x-amzn-RequestId": request_id}
    if error_type is not None:
        headers["X-Amzn-ErrorType"] = error_type
    return Response(body, status=status, headers=headers, content_type=CONTENT_TYPE)


def error_response(error: KmsError, request_id: str) -> Response:
    """An AWS-shaped error: JSON body with ``__type``, plus ``X-Amzn-ErrorType``."""
    return _response(error.status, encode_error(error), request_id, error.code)


@blueprint.get("/healthz")
def healthz() -> Response:
    """200 with the backends' and the database's state once the default backend is usable
    and the database answers, else 503 (a load balancer takes the host out of rotation)."""
    services = _services()
    database = services.store.database.health()
    reports = {name: backend.health() for name, backend in services.backends.items()}
    healthy = database.ok and reports[services.default_backend].ok
    body = {
        "status": "ok" if healthy else "unavailable",
        "default_backend": services.default_backend,
        "backends": {name: {"ok": report.ok, **report.detail} for name, report in reports.items()},
        # The engine and whether it answers; the URL is not shown (it may hold a password).
        "database": {"engine": database.engine, "ok": database.ok},
    }
    return Response(
        json.dumps(body), status=200 if healthy else 503, content_type="application/json"
    )


# No automatic OPTIONS answer (Flask's is an empty text/html 200): KMS has no CORS preflight,
# so OPTIONS is a method the endpoint does not allow, answered as one.
@blueprint.post("/", defaults={"path": ""}, provide_automatic_options=False)
@blueprint.post("/<path:path>", provide_automatic_options=False)
def dispatch(path: str) -> Response:
    """Answer one KMS request (any path, as botocore posts to the endpoint URL's path)."""
    # One context-local lookup each; the rest of the request uses plain locals.
    req: Request = request._get_current_object()  # type: ignore[attr-defined]
    app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
    return answer(req, app)


def answer(req: Request, app: Flask) -> Response:
    """The response to one KMS request: authenticated, validated, authorised, run, recorded.

    Needs no Flask context (:class:`KmsRequestPath` calls it without one); never raises for
    anything the request or the operation does: every failure is an AWS-shaped error.
    """
    started = perf_counter()
    extensions = app.extensions
    environ = req.environ
    request_id = new_request_id()
    name: str | None = None
    caller: Caller | None = None
    params: dict[str, Any] | None = None
    access: AccessScope | None = None
    result: dict[str, Any] | None = None
    error: KmsError | None = None
    try:
        # The body first, even for a target that names no operation: an answer that leaves
        # request bytes unread can reach the client as a reset connection instead.
        raw = read_body(environ, app.config["MAX_CONTENT_LENGTH"])
        name = operation_name(environ.get("HTTP_X_AMZ_TARGET"))
        authenticator: Authenticator = extensions["mock_kms.authenticator"]
        # Signatures are checked against real time (the default): the movable clock (dev
        # endpoints) moves key lifecycles, not the clients' signing clocks.
        via_service: str | None = None
        if environ.get(TRUSTED_LOOPBACK):
            # S3 calling on a caller's behalf (SSE-KMS): it verified the caller itself.
            caller, via_service = authenticator.forwarded_caller(req.headers)
        else:
            caller = authenticator.authenticate(
                req.method, _raw_path(req), req.query_string.decode("latin-1"), req.headers, raw
            )
        operation = OPERATIONS.get(name)
        if operation is None:
            if name in KNOWN_UNIMPLEMENTED:
                raise UnsupportedOperationException(f"{name} is not supported by mock-kms yet.")
            raise UnknownOperationException()
        params = load_request(_SCHEMA_INSTANCES[name], parse_body(raw))
        access = AccessScope(
            identity=caller.identity,
            operation=name,
            params=params,
            source_ip=environ.get("REMOTE_ADDR"),
            secure_transport=environ.get("wsgi.url_scheme") == "https",
            via_service=via_service,
        )
        scope = RequestScope(caller.account_id, caller.region, caller.principal_arn, access)
        before_operation = extensions.get("mock_kms.before_operation")
        if before_operation is not None:
            before_operation(name)  # fault injection: may sleep, or raise an injected error
        services = extensions["mock_kms.services"]
        # Authorisation (docs/access-control.md): operations not on a key here; operations
        # on a key when their key is resolved; and never a success without a decision.
        authorize_request(services, scope)
        result = operation(services, scope, params)
        require_authorized(scope)
    except KmsError as exc:
        error = exc
    except Exception as exc:  # noqa: BLE001 - logged and answered by error_for_failure
        error = error_for_failure(exc, request_id, log)
    if error is None:
        response = _response(200, encode_result(result), request_id)
    else:
        response = error_response(error, request_id)
    # Metrics and audit (kms_service.serving.operability), recorded here rather than from generic
    # request hooks: the operation, caller and outcome are already at hand.
    record: RequestRecorder | None = extensions.get(RECORD_EXTENSION)
    if record is not None:
        record(
            req,
            name,
            None if error is None else error.code,
            perf_counter() - started,
            request_id,
            caller,
            params,
            result,
            access.decisions if access is not None else (),
        )
    return response


class KmsRequestPath:
    """WSGI middleware: ``POST /``, the request every SDK sends, answered by :func:`answer`
    straight from the environ; everything else to ``downstream`` (the Flask app).

    Flask would route ``POST /`` to :func:`dispatch` and nothing else, and the app has no
    hooks for it (the console's hooks and session belong to ``/console``), so what this skips
    is only Flask's per-request machinery: request and app context push and pop, URL
    matching, signals. That machinery was about half of the CPU of a cheap KMS request
    (docs/performance.md). The response is the same object, finalised by werkzeug the same way;
    an exception escaping :func:`answer` gets the answer Flask's error handler gives it.
    """

    def __init__(self, downstream: WSGIApplication, app: Flask) -> None:
        self.downstream = downstream
        self.app = app

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/" or environ.get("REQUEST_METHOD") != "POST":
            return self.downstream(environ, start_response)
        try:
            response = answer(Request(environ), self.app)
        except Exception:
            # What Flask does with an exception its view lets out: log it, answer 500
            # through the HTTPException handler below.
            log.exception("unexpected error answering a KMS request")
            response = http_error(InternalServerError())
        return response(environ, start_response)


def _raw_path(req: Request) -> str:
    """The path exactly as the client sent it (still percent-encoded), which is what SigV4
    signs; gunicorn keeps it in ``RAW_URI``."""
    environ = req.environ
    raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw_uri:
        return str(raw_uri).split("?", 1)[0]
    return quote(req.path)


@blueprint.app_errorhandler(RequestEntityTooLarge)
def too_large(_: RequestEntityTooLarge) -> Response:
    """Bodies over the cap on other routes (the admin endpoints' JSON)."""
    limit = int(current_app.config["MAX_CONTENT_LENGTH"])
    return error_response(too_large_error(limit), new_request_id())


@blueprint.app_errorhandler(HTTPException)
def http_error(error: HTTPException) -> Response:
    """Routing errors (wrong method, unknown path) keep the AWS JSON error shape."""
    status = error.code or 400
    body = encode_error(UnknownOperationException(error.description))
    return _response(status, body, new_request_id(), "UnknownOperationException")
