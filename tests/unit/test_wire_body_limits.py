"""Request bodies the KMS wire layer refuses as the caller's fault: JSON nested past
MAX_JSON_DEPTH in any member, and bodies the server's input stream cannot deliver."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kms_service.domain.errors import MalformedHttpRequestException, SerializationException
from kms_service.wire.protocol import MAX_JSON_DEPTH, nesting_exceeds, parse_body, read_body
from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import load_request
from tests.support.hostile import Path, member_positions, placed


def nested(depth: int, kind: str = "list") -> Any:
    """A value ``depth`` levels deep (a scalar is level 0)."""
    value: Any = 1
    for level in range(depth):
        value = [value] if kind == "list" or (kind == "mixed" and level % 2) else {"a": value}
    return value


@pytest.mark.parametrize("kind", ["list", "object", "mixed"])
def test_nesting_exceeds_counts_levels(kind: str) -> None:
    assert not nesting_exceeds(nested(5, kind), 5)
    assert nesting_exceeds(nested(6, kind), 5)
    assert not nesting_exceeds(1, 0)
    assert not nesting_exceeds({"a": [1, 2], "b": {"c": "d"}}, 2)
    assert nesting_exceeds({"a": [1, 2], "b": {"c": ["d"]}}, 2)


def test_nesting_exceeds_needs_no_recursion() -> None:
    """Deeper than Python's recursion limit: measured without a RecursionError."""
    assert nesting_exceeds(nested(50_000), MAX_JSON_DEPTH)


def test_body_at_the_limit_parses() -> None:
    body = {"KeyId": "k", "Unknown": nested(MAX_JSON_DEPTH - 1)}
    assert parse_body(json.dumps(body).encode()) == body


def test_body_past_the_limit_is_a_serialization_error() -> None:
    body = {"KeyId": "k", "Unknown": nested(MAX_JSON_DEPTH)}
    with pytest.raises(SerializationException, match="nested more than 64 levels"):
        parse_body(json.dumps(body).encode())


def test_many_brackets_in_strings_are_not_nesting() -> None:
    body = {"Description": "[" * 1000 + "{" * 1000}
    assert parse_body(json.dumps(body).encode()) == body


@pytest.mark.parametrize(
    ("operation", "path"), [(operation, path) for operation, path, _ in member_positions()]
)
def test_deep_value_in_every_member_is_a_serialization_error(operation: str, path: Path) -> None:
    """Through the same two steps as a request (parse, then load): 400, never a 500."""
    body = placed(path, nested(600))
    raw = json.dumps(body).encode()
    with pytest.raises(SerializationException):
        load_request(SCHEMAS[operation](), parse_body(raw))


class _FailingStream:
    def __init__(self, error: Exception) -> None:
        self.error = error

    def read(self, size: int = -1) -> bytes:
        raise self.error


@pytest.mark.parametrize(
    "error", [OSError("No more data"), ValueError("Invalid chunk size"), RuntimeError("x")]
)
@pytest.mark.parametrize("chunked", [False, True])
def test_unreadable_body_is_a_malformed_http_request(error: Exception, chunked: bool) -> None:
    environ: dict[str, Any] = {"wsgi.input": _FailingStream(error)}
    if chunked:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = "10"
    with pytest.raises(MalformedHttpRequestException, match="could not be read"):
        read_body(environ, 1024)


def test_readable_body_is_returned() -> None:
    environ = {"wsgi.input": io.BytesIO(b'{"a":1}'), "CONTENT_LENGTH": "7"}
    assert read_body(environ, 1024) == b'{"a":1}'
