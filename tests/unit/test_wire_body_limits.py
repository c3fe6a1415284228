"""Request bodies the KMS wire layer refuses as the caller's fault: JSON nested past
MAX_JSON_DEPTH in any member, and bodies the server's input stream cannot deliver."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from kms_service.domain.errors import SerializationException
from kms_service.wire.protocol import MAX_JSON_DEPTH, nesting_exceeds, parse_body, read_body
from kms_service.wire.schemas import SCHEMAS
from kms_service.wire.validation import load_request


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


def member_positions() -> list[tuple[str, list[str | int]]]:
    """Every (operation, path) a value can take: each member, and each member of a nested
    structure or of a list of structures."""
    positions: list[tuple[str, list[str | int]]] = []
    for operation, schema in SCHEMAS.items():
        for name, field in schema().fields.items():
            positions.append((operation, [name]))
            inner = getattr(field, "schema", None) or getattr(field, "member", None)
            if isinstance(inner, type):
                prefix: list[str | int] = [name] if hasattr(field, "schema") else [name, 0]
                positions += [(operation, [*prefix, sub]) for sub in inner().fields]
    return positions


def placed(path: list[str | int], value: Any) -> dict[str, Any]:
    """The request body with ``value`` at ``path`` (an int step is a list's first item)."""
    for step in reversed(path):
        value = [value] if isinstance(step, int) else {step: value}
    body: dict[str, Any] = value
    return body


@pytest.mark.parametrize(("operation", "path"), member_positions())
def test_deep_value_in_every_member_is_a_serialization_error(
    operation: str, path: list[str | int]
) -> None:
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
def test_unreadable_body_is_a_serialization_error(error: Exception, chunked: bool) -> None:
    environ: dict[str, Any] = {"wsgi.input": _FailingStream(error)}
    if chunked:
        environ["wsgi.input_terminated"] = True
    else:
        environ["CONTENT_LENGTH"] = "10"
    with pytest.raises(SerializationException, match="could not be read"):
        read_body(environ, 1024)


def test_readable_body_is_returned() -> None:
    environ = {"wsgi.input": io.BytesIO(b'{"a":1}'), "CONTENT_LENGTH": "7"}
    assert read_body(environ, 1024) == b'{"a":1}'
