"""AWS JSON 1.1 framing: reading the operation and body, writing results and errors."""

from __future__ import annotations

import base64
import json
import random
import re
from typing import Any

from kms_service.domain.errors import (
    KmsError,
    RequestEntityTooLargeException,
    SerializationException,
    UnknownOperationException,
)

CONTENT_TYPE = "application/x-amz-json-1.1"
TARGET_PREFIX = "TrentService."
# What json.dumps(..., separators=(",", ":")) uses, built once: json.dumps builds a new encoder
# on every call that passes any option.
_COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def operation_name(target: str | None) -> str:
    """The operation named by ``X-Amz-Target``; raises :class:`UnknownOperationException`."""
    if not target or not target.startswith(TARGET_PREFIX):
        raise UnknownOperationException()
    return target[len(TARGET_PREFIX) :]


def new_request_id() -> str:
    """A fresh ``x-amzn-RequestId``, in the UUID version 4 form AWS uses.

    Request ids need to be unique, not secret: they come from the ``random`` module (reseeded
    in every forked worker), which costs a fraction of ``uuid.uuid4()`` and, unlike
    ``os.urandom``, no system call that hands the GIL to another request thread.
    """
    digits = f"{random.getrandbits(128):032x}"
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-4{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """The request body from a WSGI environ, read straight from ``wsgi.input``.

    A body declared longer than ``limit`` is not read; a chunked body (no Content-Length) is
    read up to ``limit`` plus one byte, never cut silently. Raises
    :class:`RequestEntityTooLargeException` in both cases.
    """
    stream = environ.get("wsgi.input")
    if stream is None:
        return b""
    declared = environ.get("CONTENT_LENGTH")
    if not declared:
        # Chunked: only a server that marks its input terminated (gunicorn does) can be read
        # to its end without a length.
        if not environ.get("wsgi.input_terminated"):
            return b""
        raw: bytes = stream.read(limit + 1)
        if len(raw) > limit:
            raise too_large_error(limit)
        return raw
    try:
        length = max(0, int(declared))
    except ValueError:
        length = 0  # as werkzeug: a malformed length reads nothing
    if length > limit:
        raise too_large_error(limit)
    body: bytes = stream.read(length) if length else b""
    return body


def too_large_error(limit: int) -> RequestEntityTooLargeException:
    """AWS's answer to a body over ``limit`` bytes."""
    return RequestEntityTooLargeException(f"Request body exceeds the limit of {limit} bytes.")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in a request body (empty means ``{}``).

    Raises :class:`SerializationException` for anything that is not a JSON object.
    """
    if not raw.strip():
        return {}
    try:
        # Strict UTF-8 first: json.loads(bytes) would let UTF-8-encoded surrogates through.
        body = json.loads(raw.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise SerializationException("Request body is not valid JSON.") from None
    if not isinstance(body, dict):
        raise SerializationException("Request body must be a JSON object.")
    if _SURROGATE_ESCAPE.search(raw) is not None:
        # A lone "\ud800" escape decodes to a str that cannot be encoded as UTF-8 (SQLite,
        # the context encoding); a valid pair decodes to one code point and passes.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationException("Request body is not valid JSON.") from None
    return body


def _to_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dict):
        return {k: _to_wire(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def encode_result(result: dict[str, Any] | None) -> bytes:
    """The response body: empty for operations without output, else compact JSON with blobs
    in padded base64, absent members left out and timestamps as epoch-second numbers."""
    if result is None:
        return b""
    return _COMPACT_JSON.encode(_to_wire(result)).encode()


def encode_error(error: KmsError) -> bytes:
    """``{"__type": ..., "message": ...}``; errors AWS sends without a message have none."""
    body: dict[str, str] = {"__type": error.code}
    if error.message is not None:
        body["message"] = error.message
    return json.dumps(body, separators=(",", ":")).encode()
