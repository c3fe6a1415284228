"""The HTTP side of S3: reading a request's addressing, caller and transport, and writing
responses and S3's XML errors.

Path-style addressing (``/bucket/key``) is what boto3 and the AWS CLI use against an IP
endpoint such as ``http://127.0.0.1:8080``. Against a name such as ``http://localhost:8080``
they send virtual-hosted-style requests (``Host: <bucket>.localhost:8080``, the bucket in the
host name and only the key in the path), and so do requests to ``<bucket>.s3.<anything>``
(``<bucket>.s3.amazonaws.com``, ``<bucket>.s3.us-east-1.localhost``): both are understood (see
docs/serving.md). The key is decoded from the raw request URI (as
the client percent-encoded it), never from the WSGI ``PATH_INFO``, which has lost the
difference between ``%2F`` and ``/`` and is latin-1-decoded.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote, urlsplit
from wsgiref.types import WSGIEnvironment

from werkzeug.datastructures import EnvironHeaders
from werkzeug.wrappers import Response

from s3_service import errors, xmlcodec
from s3_service.body import ChunkCheck
from s3_service.errors import S3Error

_SIGV4_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/\d{8}/([^/,\s]+)/")
_SIGV2 = re.compile(r"^AWS ([^:\s]+):")
_ACCOUNT_ID = re.compile(r"^[0-9]{12}$")
_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP_ADDRESS = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
MAX_KEY_BYTES = 1024


@dataclass(frozen=True)
class Caller:
    """Who is calling, as far as an unauthenticated endpoint can tell: the access key id and
    region of the request's signature (None when unsigned) and the account they stand for (a
    12-digit access key id is used as the account id, as the KMS side does)."""

    access_key_id: str | None
    signed_region: str | None
    account_id: str


@dataclass(frozen=True)
class S3Request:
    """One S3 request, addressed: ``bucket`` and ``key`` are None when absent."""

    environ: WSGIEnvironment
    method: str
    bucket: str | None
    key: str | None
    query: dict[str, str]
    headers: EnvironHeaders
    secure: bool
    caller: Caller
    request_id: str
    resource: str
    #: Chunk signatures to check (sigv4 mode, STREAMING-AWS4-HMAC-SHA256-PAYLOAD).
    chunk_check: ChunkCheck | None = None

    @property
    def stream(self) -> BinaryIO:
        stream: BinaryIO = self.environ["wsgi.input"]
        return stream

    def header(self, name: str) -> str | None:
        value: str | None = self.headers.get(name)
        return value

    def bucket_and_key(self) -> tuple[str, str]:
        """``(bucket, key)`` of an object request; ``InvalidRequest`` when either is absent."""
        if self.bucket is None or self.key is None:
            raise errors.invalid_request("A bucket and a key are required.")
        return self.bucket, self.key

    @classmethod
    def from_environ(
        cls, environ: WSGIEnvironment, request_id: str, default_account: str
    ) -> S3Request:
        """Parse addressing, query and caller. Raises ``InvalidURI``-like ``InvalidArgument``
        for undecodable paths and ``KeyTooLongError``."""
        headers = EnvironHeaders(environ)
        raw_path, raw_query = raw_target(environ)
        try:
            path = unquote(raw_path, errors="strict")
        except UnicodeDecodeError:
            raise errors.S3Error(400, "InvalidURI", "Couldn't parse the specified URI.") from None
        virtual = bucket_from_host(headers.get("Host") or "")
        if virtual is not None:
            bucket: str | None = virtual
            key: str | None = path[1:] or None
        else:
            bucket_part, _, key_part = path[1:].partition("/")
            bucket = bucket_part or None
            key = key_part or None
        if key is not None and len(key.encode()) > MAX_KEY_BYTES:
            raise errors.key_too_long()
        query = dict(parse_qsl(raw_query, keep_blank_values=True))
        return cls(
            environ=environ,
            method=str(environ.get("REQUEST_METHOD", "GET")).upper(),
            bucket=bucket,
            key=key,
            query=query,
            headers=headers,
            secure=environ.get("wsgi.url_scheme") == "https",
            caller=_caller(headers, query, default_account),
            request_id=request_id,
            resource=path or "/",
        )


def bucket_from_host(host: str) -> str | None:
    """The bucket a virtual-hosted-style ``Host`` header names, or None for path style.

    ``b.localhost[:port]`` and ``b.s3.localhost`` name bucket ``b`` (a bucket name may hold
    dots: ``my.logs.localhost`` is ``my.logs``); elsewhere, what comes before the first
    ``.s3.`` is the bucket (``b.s3.amazonaws.com``, ``b.s3.eu-west-1.example.test``). An IP
    address, ``localhost`` and ``s3.<anything>`` name none.
    """
    name = host.strip().lower()
    if name.startswith("["):  # an IPv6 literal
        return None
    name = name.rsplit(":", 1)[0] if ":" in name else name
    if name.endswith(".localhost"):
        bucket = name.removesuffix(".localhost").removesuffix(".s3")
    else:
        bucket, separator, _ = name.partition(".s3.")
        if not separator:
            return None
    if bucket == "s3" or _IP_ADDRESS.match(bucket) or not _BUCKET_NAME.match(bucket):
        return None
    return bucket


def raw_target(environ: WSGIEnvironment) -> tuple[str, str]:
    """``(path, query)`` exactly as the client sent them (gunicorn: ``RAW_URI``)."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        text = str(raw)
        if "://" in text.split("?", 1)[0]:
            parts = urlsplit(text)
            return parts.path or "/", parts.query
        path, _, query = text.partition("?")
        return path or "/", query
    # Servers without a raw URI: PATH_INFO is latin-1 text of the decoded bytes; re-quote it.
    path_info = str(environ.get("PATH_INFO", "/")).encode("latin-1").decode("utf-8", "replace")
    return quote(path_info), str(environ.get("QUERY_STRING", ""))


def _caller(headers: EnvironHeaders, query: dict[str, str], default_account: str) -> Caller:
    authorization = headers.get("Authorization") or ""
    access_key: str | None = None
    region: str | None = None
    match = _SIGV4_CREDENTIAL.search(authorization)
    if match:
        access_key, region = match.group(1), match.group(2)
    elif (v2 := _SIGV2.match(authorization)) is not None:
        access_key = v2.group(1)
    elif "X-Amz-Credential" in query:
        parts = query["X-Amz-Credential"].split("/")
        access_key = parts[0] or None
        region = parts[2] if len(parts) > 2 else None
    elif "AWSAccessKeyId" in query:
        access_key = query["AWSAccessKeyId"] or None
    account = access_key if access_key and _ACCOUNT_ID.match(access_key) else default_account
    return Caller(access_key, region, account)


def _host_id(request_id: str) -> str:
    return base64.b64encode(hashlib.sha256(request_id.encode()).digest()).decode("ascii")


def new_request_id() -> str:
    return secrets.token_hex(8).upper()


def base_headers(request_id: str) -> dict[str, str]:
    return {
        "x-amz-request-id": request_id,
        "x-amz-id-2": _host_id(request_id),
        "Server": "AmazonS3",
    }


def xml_response(
    request: S3Request, body: bytes, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    all_headers = base_headers(request.request_id)
    all_headers.update(headers or {})
    return Response(body, status=status, headers=all_headers, content_type="application/xml")


def empty_response(
    request: S3Request, *, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    all_headers = base_headers(request.request_id)
    all_headers.update(headers or {})
    response = Response(b"", status=status, headers=all_headers)
    if status == 204:
        response.headers.pop("Content-Type", None)
    return response


def error_response(error: S3Error, method: str, resource: str, request_id: str) -> Response:
    """S3's XML error; a HEAD answer carries only the status and headers, as AWS's does."""
    headers = base_headers(request_id)
    if method == "HEAD":
        return Response(b"", status=error.status, headers=headers, content_type="application/xml")
    body = xmlcodec.error_document(error, resource, request_id, headers["x-amz-id-2"])
    return Response(body, status=error.status, headers=headers, content_type="application/xml")


def http_date(seconds: float) -> str:
    """RFC 7231 date (``Last-Modified``), to the second as S3 reports it."""
    return formatdate(int(seconds), usegmt=True)


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def stream_response(
    request: S3Request, body: Any, *, status: int, headers: dict[str, str]
) -> Response:
    """A response whose body is an iterable of byte pieces, passed to the server untouched
    (so nothing buffers the whole object)."""
    all_headers = base_headers(request.request_id)
    all_headers.update(headers)
    return Response(body, status=status, headers=all_headers, direct_passthrough=True)
