"""AWS-shaped answers for the requests gunicorn's HTTP layer refuses, beneath Flask.

gunicorn answers a request it cannot parse (a header sent twice, an invalid header name, an
over-long request line or header section, bad chunked framing...) with an HTML page of its
own. :class:`AwsErrorWorker`, the threaded worker with :meth:`~AwsErrorWorker.handle_error`
replaced, answers in the words of the service the request was meant for instead:

* KMS: ``{"__type": ..., "message": ...}`` with ``x-amzn-RequestId`` and
  ``X-Amzn-ErrorType``, as :mod:`kms_service.wire` writes every other KMS error
  (``MalformedHttpRequestException``, ``RequestEntityTooLargeException``: the errors AWS
  lists as common to every service);
* S3: ``<Error><Code/><Message/><RequestId/>...</Error>`` with ``x-amz-request-id``, as
  :mod:`s3_service.wire` writes every other S3 error.

Which service a request was meant for is decided by the rule that routes requests gunicorn
*does* parse (:func:`s3_service.routing.is_kms_request`: an ``X-Amz-Target`` header, or a
JSON ``POST`` without a query) whenever gunicorn got as far as the headers. When it failed
inside the header section only the request line is known, so the fallback reads that: a
``POST`` without a query string is a KMS call (every AWS SDK posts KMS requests so, and S3
posts only to sub-resources with a query); anything else is S3, as is a request whose
request line itself could not be read. The decision depends on the request alone, never on
whether this server mounts S3 (``--no-s3``): the answer is in the dialect the client speaks.
docs/http-errors.md has the whole table.

The worker is named by its import path (``worker_class``) in both ways of starting the
server: ``mock-kms serve`` and ``deploy/gunicorn.conf.py``.
"""

from __future__ import annotations

import enum
import logging
import ssl
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gunicorn import util
from gunicorn.http import errors as http_errors
from gunicorn.http.message import Message
from gunicorn.http.wsgi import Response, default_environ
from gunicorn.workers.gthread import ThreadWorker

from kms_service.domain.errors import (
    AccessDeniedException,
    KmsError,
    KMSInternalException,
    MalformedHttpRequestException,
    RequestEntityTooLargeException,
)
from kms_service.wire import protocol
from s3_service import errors as s3_errors
from s3_service import wire as s3_wire
from s3_service import xmlcodec
from s3_service.routing import is_kms_request

log = logging.getLogger("mock_kms.server")

KMS = "kms"
S3 = "s3"
#: The attribute set on a gunicorn request once the app's response to it has been written.
_ANSWERED = "mock_kms_answered"
#: At most this many characters of a client's own bytes are echoed in a message.
_MAX_ECHO = 64


class Refusal(enum.Enum):
    """Why the HTTP layer refused a request; each service names each kind its own way."""

    MALFORMED = "malformed"
    TOO_LARGE = "too large"
    UNSUPPORTED = "unsupported"
    FORBIDDEN = "forbidden"
    INTERNAL = "internal"


@dataclass(frozen=True)
class RequestHead:
    """What gunicorn had parsed of a request when it refused it: the request line, and the
    headers (upper-case names, as gunicorn keeps them) if it got that far."""

    method: str
    path: str
    query: str
    headers: tuple[tuple[str, str], ...]

    @classmethod
    def from_gunicorn(cls, req: Any) -> RequestHead | None:
        """The head of a gunicorn request object, or None when not even its request line
        was parsed."""
        method = getattr(req, "method", None)
        if req is None or not isinstance(method, str):
            return None
        headers = tuple(
            (str(name), str(value)) for name, value in (getattr(req, "headers", None) or ())
        )
        return cls(method, str(req.path or "/"), str(req.query or ""), headers)


def request_being_parsed(exc: BaseException) -> Any:
    """The gunicorn request object ``exc`` was raised while parsing, or None.

    gunicorn attaches it to a few of its errors (``exc.req``) but raises most header errors
    without it, from inside the request object's own parsing methods; the innermost frame of
    the traceback whose ``self`` is a request has it, request line parsed, headers not yet.
    """
    attached = getattr(exc, "req", None)
    if isinstance(attached, Message):
        return attached
    found = None
    tb = exc.__traceback__
    while tb is not None:
        candidate = tb.tb_frame.f_locals.get("self")
        if isinstance(candidate, Message):
            found = candidate
        tb = tb.tb_next
    return found


def service_for(head: RequestHead | None) -> str:
    """:data:`KMS` or :data:`S3`: the service ``head`` was meant for (see the module
    docstring for the rule)."""
    if head is None:
        # Not even the request line was read (it was over-long, or not HTTP): S3's REST API
        # is the one that puts everything in the URL.
        return S3
    if not head.headers:
        return KMS if head.method.upper() == "POST" and not head.query else S3
    environ: dict[str, Any] = {
        "REQUEST_METHOD": head.method.upper(),
        "PATH_INFO": head.path,
        "QUERY_STRING": head.query,
    }
    for name, value in head.headers:
        if name == "CONTENT-TYPE":
            environ["CONTENT_TYPE"] = value
        elif name == "X-AMZ-TARGET":
            environ["HTTP_X_AMZ_TARGET"] = value
    return KMS if is_kms_request(environ) else S3


def shown(value: object) -> str:
    """A client's value made safe to echo: printable ASCII only, at most ``_MAX_ECHO``
    characters, quoted."""
    text = "".join(ch if " " <= ch <= "~" else "?" for ch in str(value))
    if len(text) > _MAX_ECHO:
        text = text[:_MAX_ECHO] + "..."
    return f"'{text}'"


def classify(exc: BaseException) -> tuple[Refusal, str]:
    """The kind of refusal ``exc`` (raised by gunicorn's parser, or by anything below the
    app) stands for, and the message the client reads. The message names what was wrong
    with the request and never carries internals: no exception names, no paths."""
    errors = http_errors
    if isinstance(exc, errors.InvalidResponseHeader | errors.InvalidResponseHeaderName):
        return Refusal.INTERNAL, ""  # the application's own header: its fault, not the client's
    if isinstance(exc, errors.LimitRequestLine):
        limit = f" ({exc.max_size} bytes)" if exc.max_size else ""
        return (
            Refusal.TOO_LARGE,
            f"The HTTP request line is longer than this server accepts{limit}.",
        )
    if isinstance(exc, errors.LimitRequestHeaders):
        return Refusal.TOO_LARGE, "The HTTP request headers are larger than this server accepts."
    if isinstance(exc, errors.UnsupportedTransferCoding):
        return (
            Refusal.UNSUPPORTED,
            f"Transfer-Encoding {shown(exc.hdr)} is not supported: send the body with "
            "Content-Length or chunked.",
        )
    if isinstance(exc, errors.ForbiddenProxyRequest):
        return Refusal.FORBIDDEN, "Access Denied"
    if isinstance(exc, ssl.SSLError):
        return Refusal.FORBIDDEN, "The TLS handshake failed."
    message = _malformed_message(exc)
    if message is not None:
        return Refusal.MALFORMED, message
    return Refusal.INTERNAL, ""


def _malformed_message(exc: BaseException) -> str | None:
    """The message for a request gunicorn could not parse, or None if ``exc`` is not one."""
    errors = http_errors
    if isinstance(exc, errors.InvalidRequestLine | errors.InvalidH2CPreface):
        return "The HTTP request line could not be parsed."
    if isinstance(exc, errors.InvalidRequestMethod):
        return f"The HTTP method {shown(exc.method)} is not valid."
    if isinstance(exc, errors.InvalidHTTPVersion):
        return "The HTTP version is not supported: send HTTP/1.1 or HTTP/1.0."
    if isinstance(exc, errors.InvalidHeaderName):
        return f"The HTTP header name {shown(exc.hdr)} is not valid."
    if isinstance(exc, errors.InvalidHeader):
        return (
            f"The HTTP header {shown(exc.hdr)} is not valid: it is malformed, or sent more "
            "than once where HTTP allows only one."
        )
    if isinstance(exc, errors.ObsoleteFolding):
        return f"The HTTP header {shown(exc.hdr)} is folded over several lines."
    if isinstance(exc, errors.InvalidSchemeHeaders):
        return "The request's forwarded-scheme headers contradict each other."
    if isinstance(exc, errors.ExpectationFailed):
        return f"Expect: {shown(exc.expect)} is not supported (only 100-continue is)."
    if isinstance(
        exc, errors.InvalidChunkSize | errors.ChunkMissingTerminator | errors.InvalidChunkExtension
    ):
        return "The request body is not valid chunked transfer encoding."
    if isinstance(exc, errors.InvalidProxyLine | errors.InvalidProxyHeader):
        return "The PROXY protocol header is not valid."
    return None


def kms_error(refusal: Refusal, message: str, request_id: str) -> KmsError:
    """The KMS error (``__type`` and status) for ``refusal``."""
    if refusal is Refusal.TOO_LARGE:
        return RequestEntityTooLargeException(message)
    if refusal is Refusal.FORBIDDEN:
        return AccessDeniedException(message)
    if refusal is Refusal.INTERNAL:
        return KMSInternalException(f"An internal error occurred (request id {request_id}).")
    # Malformed HTTP and unsupported transfer codings alike: the request cannot be read.
    return MalformedHttpRequestException(message)


def s3_error(refusal: Refusal, message: str, request_id: str) -> s3_errors.S3Error:
    """The S3 error (``Code`` and status) for ``refusal``."""
    if refusal is Refusal.TOO_LARGE:
        return s3_errors.request_header_section_too_large()
    if refusal is Refusal.UNSUPPORTED:
        return s3_errors.header_not_implemented("Transfer-Encoding")
    if refusal is Refusal.FORBIDDEN:
        return s3_errors.access_denied()
    if refusal is Refusal.INTERNAL:
        return s3_errors.internal_error(request_id)
    return s3_errors.invalid_request(message)


def new_request_id(service: str) -> str:
    """A request id in the form ``service`` uses (a UUID for KMS, 16 hex digits for S3)."""
    return protocol.new_request_id() if service == KMS else s3_wire.new_request_id()


def error_response(
    service: str, refusal: Refusal, message: str, head: RequestHead | None, request_id: str
) -> bytes:
    """The whole HTTP/1.1 response (status line, headers, body) for a refused request, which
    always closes the connection: where the next request would start is unknown. A ``HEAD``
    request's answer has the headers only, as every HEAD answer."""
    if service == KMS:
        error = kms_error(refusal, message, request_id)
        status = error.status
        body = protocol.encode_error(error)
        headers = [
            ("x-amzn-RequestId", request_id),
            ("X-Amzn-ErrorType", error.code),
            ("Content-Type", protocol.CONTENT_TYPE),
        ]
    else:
        s3 = s3_error(refusal, message, request_id)
        status = s3.status
        base = s3_wire.base_headers(request_id)
        resource = head.path if head is not None else "/"
        body = xmlcodec.error_document(s3, resource, request_id, base["x-amz-id-2"])
        headers = [*base.items(), ("Content-Type", "application/xml")]
    headers += [("Content-Length", str(len(body))), ("Connection", "close")]
    head_only = head is not None and head.method == "HEAD"
    status_line = f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
    lines = status_line + "".join(f"{name}: {value}\r\n" for name, value in headers)
    return lines.encode("latin-1") + b"\r\n" + (b"" if head_only else body)


_REASONS = {
    400: "Bad Request",
    403: "Forbidden",
    413: "Request Entity Too Large",
    500: "Internal Server Error",
    501: "Not Implemented",
}


class AwsErrorWorker(ThreadWorker):  # type: ignore[misc]
    """gunicorn's threaded worker (``gthread``), answering refused requests AWS-shaped."""

    def handle_request(self, req: Any, conn: Any) -> Any:
        """As gunicorn's, then marks ``req`` answered: an error gunicorn raises after this
        (draining a body the app did not read) must not write a second response."""
        keepalive = super().handle_request(req, conn)
        setattr(req, _ANSWERED, True)
        return keepalive

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        """Answer the request gunicorn refused (or whose app raised past the WSGI boundary)
        as the service it was meant for; log as gunicorn does."""
        started = datetime.now()
        if req is not None and getattr(req, _ANSWERED, False):
            # The response went out already; the connection closes after this.
            self.log.debug("Error after the response to %s %s: %s", req.method, req.path, exc)
            return
        if req is None:
            req = request_being_parsed(exc)
        refusal, message = classify(exc)
        head = RequestHead.from_gunicorn(req)
        service = service_for(head)
        request_id = new_request_id(service)
        if refusal is Refusal.INTERNAL:
            # Internals stay in the log, under the id the client sees.
            self.log.exception(
                "request %s: error handling %s %s",
                request_id,
                head and head.method,
                head and head.path,
            )
        else:
            self.log.warning("Invalid request from ip=%s: %s", (addr or ("",))[0], exc)
        response = error_response(service, refusal, message, head, request_id)
        if req is not None:
            self._log_access(req, client, addr, response, started)
        try:
            util.write_nonblock(client, response)
        except OSError:
            self.log.debug("Failed to send error message.")

    def _log_access(
        self, req: Any, client: Any, addr: Any, response: bytes, started: datetime
    ) -> None:
        """The access-log line gunicorn writes for its own error pages."""
        try:
            addr = addr or ("", -1)
            environ = default_environ(req, client, self.cfg)
            environ["REMOTE_ADDR"], environ["REMOTE_PORT"] = addr[0], str(addr[1])
            resp = Response(req, client, self.cfg)
            resp.status = response.split(b"\r\n", 1)[0].split(b" ", 1)[1].decode("latin-1")
            resp.response_length = len(response)
            self.log.access(resp, req, environ, datetime.now() - started)
        except Exception:  # noqa: BLE001 - a log line must never cost the client its answer
            self.log.debug("Failed to log the refused request.")


#: The ``worker_class`` value that selects :class:`AwsErrorWorker`.
WORKER_CLASS = f"{__name__}.AwsErrorWorker"
