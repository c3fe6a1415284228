"""Which service answers a request, and which S3 operation.

:class:`TargetRouter` sits in front of the KMS Flask app: requests carrying an
``X-Amz-Target`` header (every AWS JSON protocol request, ``TrentService.*`` for KMS), KMS-style
JSON POSTs to a path without a query, and ``GET /healthz`` (unless the ``Host`` names a
bucket, virtual-hosted style) go to the KMS exactly as before; everything else is S3 REST.
S3 never sends ``X-Amz-Target``, so the split is unambiguous.

:class:`S3Application` maps method, bucket/key and sub-resource to one operation and turns
:class:`~s3_service.errors.S3Error` into S3's XML errors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import replace
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from werkzeug.wrappers import Response

from database import DatabaseUnavailableError
from s3_service import buckets, errors, listing, multipart, objects
from s3_service.errors import S3Error
from s3_service.services import S3Services
from s3_service.wire import S3Request, bucket_from_host, error_response, new_request_id, raw_target

log = logging.getLogger("mock_kms.s3")
Handler = Callable[[S3Services, S3Request], Response]

#: Sub-resources S3 has that this endpoint does not implement: answered 501, never
#: mistaken for a plain bucket or object operation.
UNSUPPORTED_BUCKET_SUBRESOURCES = frozenset(
    {
        "accelerate", "acl", "analytics", "cors", "intelligent-tiering", "inventory",
        "lifecycle", "logging", "metadataTable", "metrics", "notification", "object-lock",
        "ownershipControls", "policy", "policyStatus", "publicAccessBlock", "replication",
        "requestPayment", "tagging", "versioning", "versions", "website",
    }
)  # fmt: skip
UNSUPPORTED_OBJECT_SUBRESOURCES = frozenset(
    {"acl", "attributes", "legal-hold", "restore", "retention", "select", "tagging", "torrent"}
)


def is_kms_request(environ: WSGIEnvironment) -> bool:
    """Whether the KMS app should answer (see the module docstring)."""
    if environ.get("HTTP_X_AMZ_TARGET"):
        return True
    method = environ.get("REQUEST_METHOD", "GET")
    if (
        environ.get("PATH_INFO") == "/healthz"
        and method in ("GET", "HEAD")
        and bucket_from_host(str(environ.get("HTTP_HOST", ""))) is None  # else: a key
    ):
        return True
    content_type = str(environ.get("CONTENT_TYPE", "")).lower()
    return (
        method == "POST"
        and not environ.get("QUERY_STRING")
        and content_type.startswith("application/x-amz-json")
    )


class TargetRouter:
    """WSGI middleware: KMS requests to ``kms``, all others to ``s3``."""

    def __init__(self, kms: WSGIApplication, s3: WSGIApplication) -> None:
        self.kms = kms
        self.s3 = s3

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        app = self.kms if is_kms_request(environ) else self.s3
        return app(environ, start_response)


def _not_allowed(request: S3Request, resource: str) -> S3Error:
    return errors.method_not_allowed(request.method, resource)


def resolve(request: S3Request) -> Handler:
    """The operation for ``request``. Raises ``MethodNotAllowed`` or ``NotImplemented``."""
    method, query = request.method, request.query
    if request.bucket is None:
        if method in ("GET", "HEAD"):
            return buckets.list_buckets
        raise _not_allowed(request, "SERVICE")
    if request.key is None:
        return _resolve_bucket(request, method, query)
    return _resolve_object(request, method, query)


def _resolve_bucket(request: S3Request, method: str, query: dict[str, str]) -> Handler:
    if "encryption" in query:
        table: dict[str, Handler] = {
            "PUT": buckets.put_bucket_encryption,
            "GET": buckets.get_bucket_encryption,
            "DELETE": buckets.delete_bucket_encryption,
        }
        if method in table:
            return table[method]
        raise _not_allowed(request, "BUCKET")
    if "location" in query and method == "GET":
        return buckets.get_bucket_location
    if "uploads" in query and method == "GET":
        return multipart.list_uploads
    if "delete" in query and method == "POST":
        return objects.delete_objects
    unsupported = sorted(UNSUPPORTED_BUCKET_SUBRESOURCES.intersection(query))
    if unsupported:
        raise errors.not_implemented(f"the ?{unsupported[0]} bucket sub-resource")
    if method == "PUT":
        return buckets.create_bucket
    if method == "DELETE":
        return buckets.delete_bucket
    if method == "HEAD":
        return buckets.head_bucket
    if method == "GET":
        return listing.list_objects_v2 if query.get("list-type") == "2" else listing.list_objects_v1
    raise _not_allowed(request, "BUCKET")


def _resolve_object(request: S3Request, method: str, query: dict[str, str]) -> Handler:
    unsupported = sorted(UNSUPPORTED_OBJECT_SUBRESOURCES.intersection(query))
    if unsupported:
        raise errors.not_implemented(f"the ?{unsupported[0]} object sub-resource")
    if "uploadId" in query:
        table: dict[str, Handler] = {
            "PUT": multipart.upload_part,
            "GET": multipart.list_parts,
            "POST": multipart.complete_upload,
            "DELETE": multipart.abort_upload,
        }
        if method in table:
            return table[method]
        raise _not_allowed(request, "OBJECT")
    if "uploads" in query and method == "POST":
        return multipart.create_upload
    if method == "PUT":
        if request.header("x-amz-copy-source") is not None:
            return objects.copy_object
        return objects.put_object
    if method in ("GET", "HEAD") and "partNumber" in query:
        # Answering with the whole object would be silently wrong.
        raise errors.not_implemented("GetObject/HeadObject by partNumber")
    if method == "GET":
        return objects.get_object
    if method == "HEAD":
        return objects.head_object
    if method == "DELETE":
        return objects.delete_object
    raise _not_allowed(request, "OBJECT")


class S3Application:
    """The S3 REST endpoint as a WSGI application."""

    def __init__(self, services: S3Services) -> None:
        self.services = services

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        request_id = new_request_id()
        method = str(environ.get("REQUEST_METHOD", "GET")).upper()
        resource = str(environ.get("PATH_INFO", "/"))
        try:
            request = S3Request.from_environ(environ, request_id, self.services.default_account)
            resource = request.resource
            raw_path, raw_query = raw_target(environ)
            verified = self.services.authenticator.authenticate(request, raw_path, raw_query)
            request = replace(request, caller=verified.caller, chunk_check=verified.chunks)
            response = resolve(request)(self.services, request)
        except S3Error as error:
            response = error_response(error, method, resource, request_id)
        except DatabaseUnavailableError as exc:
            log.warning("S3 request %s: database unavailable: %s", request_id, exc)
            response = error_response(errors.service_unavailable(), method, resource, request_id)
        except Exception:
            # Internals stay in the log, under the id the client sees.
            log.exception("S3 request %s (%s %s): unexpected error", request_id, method, resource)
            response = error_response(
                errors.internal_error(request_id), method, resource, request_id
            )
        return response(environ, start_response)
