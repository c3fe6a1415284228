"""AWS JSON 1.1 framing: reading the operation and body, writing results and errors."""

from __future__ import annotations

import json
import random
import re
from binascii import b2a_base64
from typing import Any

from kms_service.domain.errors import (
    KmsError,
    MalformedHttpRequestException,
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
#: The deepest nesting of JSON arrays and objects a request body may have. The deepest KMS
#: request member is three levels down (``{"Tags": [{"TagKey": ...}]}``); the limit leaves
#: room for members newer SDKs add, and keeps every recursive walk of the body (dropping nulls,
#: marshmallow's nested schemas) far below Python's recursion limit, whatever the member.
MAX_JSON_DEPTH = 64


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
    :class:`RequestEntityTooLargeException` in both cases, and
    :class:`MalformedHttpRequestException` for a body the server cannot read to its end
    (malformed chunked framing, a client that stops sending early).
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
        raw = _read(stream, limit + 1)
        if len(raw) > limit:
            raise too_large_error(limit)
        return raw
    try:
        length = max(0, int(declared))
    except ValueError:
        length = 0  # as werkzeug: a malformed length reads nothing
    if length > limit:
        raise too_large_error(limit)
    return _read(stream, length) if length else b""


def _read(stream: Any, size: int) -> bytes:
    """``stream.read(size)``, with every failure of the input stream reported as the caller's.

    What the server's input raises depends on the server (gunicorn: ``NoMoreData``, an
    ``IOError``, for a client gone mid-body; its own parse errors for bad chunked framing), so
    any exception here means the client's bytes could not be read as a body.
    """
    try:
        data: bytes = stream.read(size)
    except Exception:  # noqa: BLE001 - each server raises its own; all mean an unreadable body
        raise MalformedHttpRequestException("The request body could not be read.") from None
    return data


def too_large_error(limit: int) -> RequestEntityTooLargeException:
    """AWS's answer to a body over ``limit`` bytes."""
    return RequestEntityTooLargeException(f"Request body exceeds the limit of {limit} bytes.")


def parse_body(raw: bytes) -> dict[str, Any]:
    """The JSON object in a request body (empty means ``{}``).

    Raises :class:`SerializationException` for anything that is not a JSON object, and for
    arrays and objects nested deeper than :data:`MAX_JSON_DEPTH`.
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
    # Counting brackets (in C) first spares the walk for nearly every body: fewer brackets
    # than the limit, in strings or not, cannot nest past it.
    if raw.count(b"[") + raw.count(b"{") > MAX_JSON_DEPTH and nesting_exceeds(body, MAX_JSON_DEPTH):
        raise SerializationException(
            f"Request body is nested more than {MAX_JSON_DEPTH} levels deep."
        )
    if _SURROGATE_ESCAPE.search(raw) is not None:
        # A lone "\ud800" escape decodes to a str that cannot be encoded as UTF-8 (SQLite,
        # the context encoding); a valid pair decodes to one code point and passes.
        try:
            json.dumps(body, ensure_ascii=False).encode("utf-8")
        except UnicodeEncodeError:
            raise SerializationException("Request body is not valid JSON.") from None
    return body


def nesting_exceeds(value: Any, limit: int) -> bool:
    """Whether ``value`` (parsed JSON) nests arrays and objects more than ``limit`` levels deep.

    The top-level object is level 1. Walks with an explicit stack, never recursion, so any
    depth json.loads accepted is measured safely; stops at the first container too deep.
    """
    if not isinstance(value, dict | list):
        return False
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if depth > limit:
            return True
        for child in children:
            if isinstance(child, dict | list):
                stack.append((child, depth + 1))
    return False


def _to_wire(value: Any) -> Any:
    if isinstance(value, bytes):
        return _b64(value)
    if isinstance(value, dict):
        return _dict_to_wire(value)
    if isinstance(value, list):
        return [_to_wire(v) for v in value]
    return value


def _b64(data: bytes) -> str:
    # binascii directly: base64.b64encode is a Python wrapper around this very call.
    return b2a_base64(data, newline=False).decode("ascii")


def _dict_to_wire(value: dict[str, Any]) -> dict[str, Any]:
    """A result object on the wire: one loop for its flat members (most results have only
    those), recursion only for nested ones."""
    wire: dict[str, Any] = {}
    for name, member in value.items():
        kind = type(member)
        if kind is str or kind is int or kind is bool or kind is float:
            wire[name] = member
        elif kind is bytes:
            wire[name] = b2a_base64(member, newline=False).decode("ascii")
        elif member is not None:
            wire[name] = _to_wire(member)
    return wire


def encode_result(result: dict[str, Any] | None) -> bytes:
    """The response body: empty for operations without output, else compact JSON with blobs
    in padded base64, absent members left out and timestamps as epoch-second numbers."""
    if result is None:
        return b""
    return _COMPACT_JSON.encode(_dict_to_wire(result)).encode()


def encode_error(error: KmsError) -> bytes:
    """``{"__type": ..., "message": ...}``; errors AWS sends without a message have none."""
    body: dict[str, str] = {"__type": error.code}
    if error.message is not None:
        body["message"] = error.message
    return json.dumps(body, separators=(",", ":")).encode()
