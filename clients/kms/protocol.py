"""AWS JSON 1.1 as KMS speaks it: request bodies, success bodies and error bodies.

Python values map to the wire the way botocore maps them, so responses are the dictionaries a
boto3 KMS client returns:

* blobs are ``bytes`` in Python and padded standard base64 on the wire;
* timestamps are timezone-aware ``datetime`` in Python and epoch-second numbers on the wire;
* everything else is plain JSON.

The KMS model never reuses a member name with two types (a unit test checks that against
botocore's model), so blob and timestamp members are recognised by name. Map members
(encryption contexts) hold the caller's own keys, so they are never converted.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from clients.kms.errors import (
    KmsClientError,
    ParamSerializationError,
    ResponseParseError,
    error_class,
)

TARGET_PREFIX = "TrentService"
CONTENT_TYPE = "application/x-amz-json-1.1"

#: Request members of type blob. ``str`` values are UTF-8 encoded first, as botocore does.
REQUEST_BLOB_MEMBERS = frozenset(
    {
        "AttestationDocument",
        "CiphertextBlob",
        "EncryptedKeyMaterial",
        "ImportToken",
        "Mac",
        "Message",
        "Plaintext",
        "PublicKey",
        "SharedSecretCiphertextBlob",
        "Signature",
    }
)
#: Request members of type timestamp.
REQUEST_TIMESTAMP_MEMBERS = frozenset({"ValidTo"})
#: Response members of type blob (decoded from base64 to bytes).
RESPONSE_BLOB_MEMBERS = frozenset(
    {
        "CiphertextBlob",
        "CiphertextForRecipient",
        "ImportToken",
        "Mac",
        "Plaintext",
        "PrivateKeyCiphertextBlob",
        "PrivateKeyPlaintext",
        "PublicKey",
        "SharedSecret",
        "SharedSecretCiphertextBlob",
        "Signature",
    }
)
#: Response members of type timestamp (decoded from epoch seconds to aware datetimes).
RESPONSE_TIMESTAMP_MEMBERS = frozenset(
    {
        "CreationDate",
        "DeletionDate",
        "KeyCreationDate",
        "LastUpdatedDate",
        "NextRotationDate",
        "OnDemandRotationStartDate",
        "ParametersValidTo",
        "RotationDate",
        "Timestamp",
        "TrackingStartDate",
        "ValidTo",
    }
)
#: Members that are string->string maps with caller-chosen keys; left exactly as they are.
MAP_MEMBERS = frozenset(
    {
        "DestinationEncryptionContext",
        "EncryptionContext",
        "EncryptionContextEquals",
        "EncryptionContextSubset",
        "SourceEncryptionContext",
    }
)


# --- requests ----------------------------------------------------------------------------------
def encode_request(params: Mapping[str, Any]) -> bytes:
    """The JSON body for an operation called with ``params`` (PascalCase members).

    ``None`` values are left out (botocore never sends ``null``). Raises
    :class:`ParamSerializationError` if a value cannot be represented on the wire.
    """
    try:
        wire = _encode_structure(params, path="")
        return json.dumps(wire, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except (TypeError, ValueError) as exc:
        raise ParamSerializationError(str(exc)) from exc


def _encode_structure(params: Mapping[str, Any], path: str) -> dict[str, Any]:
    wire: dict[str, Any] = {}
    for name, value in params.items():
        if value is None:
            continue
        if not isinstance(name, str):
            raise ParamSerializationError(f"parameter names must be strings, got {name!r}")
        member_path = f"{path}.{name}" if path else name
        wire[name] = _encode_member(name, value, member_path)
    return wire


def _encode_member(name: str, value: Any, path: str) -> Any:
    if name in MAP_MEMBERS:
        return _plain_json(value, path)
    if name in REQUEST_BLOB_MEMBERS and isinstance(value, str):
        return _encode_blob(value.encode("utf-8"))
    if name in REQUEST_TIMESTAMP_MEMBERS:
        return encode_timestamp(value, path)
    return _encode_value(value, path)


def _encode_value(value: Any, path: str) -> Any:
    if isinstance(value, bytes | bytearray | memoryview):
        return _encode_blob(bytes(value))
    if isinstance(value, datetime):
        return encode_timestamp(value, path)
    if isinstance(value, Mapping):
        return _encode_structure(value, path)
    if isinstance(value, list | tuple):
        return [_encode_value(item, f"{path}[{index}]") for index, item in enumerate(value)]
    return _plain_json(value, path)


def _plain_json(value: Any, path: str) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if isinstance(value, Mapping):
        return {key: _plain_json(item, f"{path}.{key}") for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(item, f"{path}[{index}]") for index, item in enumerate(value)]
    raise ParamSerializationError(f"{path}: cannot serialise {type(value).__name__} to JSON")


def _encode_blob(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode_timestamp(value: Any, path: str = "timestamp") -> int | float:
    """Epoch seconds for a request timestamp, as botocore sends them.

    Accepts an aware or naive ``datetime`` (naive means UTC), epoch seconds as a number, or an
    ISO-8601 string. Whole seconds are sent as an integer. Raises
    :class:`ParamSerializationError` for anything else.
    """
    if isinstance(value, bool):
        raise ParamSerializationError(f"{path}: expected a timestamp, got a bool")
    if isinstance(value, int | float):
        return value
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ParamSerializationError(f"{path}: not an ISO-8601 timestamp: {value!r}") from exc
    if isinstance(value, datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        seconds = value.timestamp()
        return int(seconds) if seconds == int(seconds) else seconds
    raise ParamSerializationError(f"{path}: expected a timestamp, got {type(value).__name__}")


# --- successful responses ----------------------------------------------------------------------
def decode_response(body: bytes) -> dict[str, Any]:
    """The Python dictionary for a 2xx body: blobs as bytes, timestamps as aware datetimes.

    An empty body (operations without output) is ``{}``. Raises :class:`ResponseParseError`
    if the body is not a JSON object or a blob is not valid base64.
    """
    if not body.strip():
        return {}
    try:
        parsed = json.loads(body)
    except ValueError as exc:
        raise ResponseParseError(f"response is not JSON: {body[:200]!r}") from exc
    if not isinstance(parsed, dict):
        raise ResponseParseError(f"response is not a JSON object: {body[:200]!r}")
    return _decode_structure(parsed)


def _decode_structure(wire: dict[str, Any]) -> dict[str, Any]:
    return {name: _decode_member(name, value) for name, value in wire.items()}


def _decode_member(name: str, value: Any) -> Any:
    if value is None or name in MAP_MEMBERS:
        return value
    if name in RESPONSE_BLOB_MEMBERS and isinstance(value, str):
        return decode_blob(value, name)
    if name in RESPONSE_TIMESTAMP_MEMBERS:
        return decode_timestamp(value, name)
    if isinstance(value, dict):
        return _decode_structure(value)
    if isinstance(value, list):
        return [_decode_structure(item) if isinstance(item, dict) else item for item in value]
    return value


def decode_blob(text: str, name: str = "blob") -> bytes:
    """Bytes from padded standard base64. Raises :class:`ResponseParseError` if invalid."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ResponseParseError(f"{name} is not valid base64") from exc


def decode_timestamp(value: Any, name: str = "timestamp") -> datetime:
    """An aware UTC datetime from epoch seconds (int, float or numeric string) or ISO-8601.

    Raises :class:`ResponseParseError` for anything else.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, UTC)
    if isinstance(value, str):
        try:
            return datetime.fromtimestamp(float(value), UTC)
        except ValueError:
            pass
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError as exc:
            raise ResponseParseError(f"{name} is not a timestamp: {value!r}") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise ResponseParseError(f"{name} is not a timestamp: {value!r}")


# --- error responses ---------------------------------------------------------------------------
@dataclass(frozen=True)
class ErrorDetails:
    """What an error response says: the AWS error name and message."""

    code: str
    message: str


def parse_error(status: int, reason: str, headers: Mapping[str, str], body: bytes) -> ErrorDetails:
    """Read an error response the way the AWS SDKs do.

    The name comes from the body's ``__type`` (or ``code``), else the ``X-Amzn-ErrorType``
    header, else the HTTP status; qualified names (``com.amazonaws.kms#NotFoundException``,
    ``Name:http://...``) are reduced to the bare name. The message is ``message`` or
    ``Message`` from the body; a 5xx without a JSON body (a proxy's HTML page) gets the reason
    phrase. Never raises.
    """
    document: dict[str, Any] = {}
    stripped = body.strip()
    if stripped and not stripped.lower().startswith(b"<"):
        try:
            loaded = json.loads(stripped)
        except ValueError:
            loaded = None
        if isinstance(loaded, dict):
            document = loaded
    header_code = next((v for k, v in headers.items() if k.lower() == "x-amzn-errortype"), "")
    raw_code = document.get("__type") or document.get("code") or header_code or str(status)
    message = document.get("message", document.get("Message"))
    if message is None:
        message = reason if (status >= 500 and not document) else ""
    return ErrorDetails(code=sanitize_error_code(str(raw_code)), message=str(message))


def sanitize_error_code(raw: str) -> str:
    """``aws.protocoltests#FooError:http://...`` -> ``FooError``, as every AWS SDK does."""
    code = raw.split(":", 1)[0]
    return code.rsplit("#", 1)[-1].strip()


def error_from_response(
    *,
    status: int,
    reason: str,
    headers: Mapping[str, str],
    body: bytes,
    operation_name: str,
    request_id: str | None,
    retry_attempts: int,
) -> KmsClientError:
    """The exception (of the class named by the response's error code) for an error response."""
    details = parse_error(status, reason, headers, body)
    cls = error_class(details.code)
    return cls(
        details.code,
        details.message,
        request_id=request_id,
        status=status,
        operation_name=operation_name,
        retry_attempts=retry_attempts,
        headers={k.lower(): v for k, v in headers.items()},
    )
