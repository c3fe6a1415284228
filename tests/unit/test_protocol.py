"""AWS JSON framing helpers that work on the raw WSGI environ (kms_service.wire.protocol).

The server-level behaviour (413 over HTTP, chunked bodies through gunicorn) is covered in
tests/integration/test_wire_protocol.py; these pin the edge cases of reading the body
straight from ``wsgi.input``.
"""

from __future__ import annotations

import io
import re
import uuid
from typing import Any

import pytest

from kms_service.domain.errors import RequestEntityTooLargeException
from kms_service.wire.protocol import new_request_id, read_body

LIMIT = 64


class CountingStream(io.BytesIO):
    """A request stream that remembers how much was asked of it."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requested = 0

    def read(self, size: int | None = -1) -> bytes:
        self.requested += size if size is not None and size >= 0 else 1 << 30
        return super().read(size)


def environ(body: bytes, length: str | None, terminated: bool = True) -> dict[str, Any]:
    env: dict[str, Any] = {"wsgi.input": CountingStream(body), "wsgi.input_terminated": terminated}
    if length is not None:
        env["CONTENT_LENGTH"] = length
    return env


def test_a_declared_length_is_read_exactly() -> None:
    env = environ(b'{"a":1}trailing', "7")
    assert read_body(env, LIMIT) == b'{"a":1}'


def test_a_declared_length_over_the_limit_is_refused_unread() -> None:
    env = environ(b"x" * (LIMIT + 1), str(LIMIT + 1))
    with pytest.raises(RequestEntityTooLargeException, match=f"limit of {LIMIT} bytes"):
        read_body(env, LIMIT)
    assert env["wsgi.input"].requested == 0


@pytest.mark.parametrize("size", [0, 1, LIMIT])
def test_a_chunked_body_up_to_the_limit_is_read_whole(size: int) -> None:
    assert read_body(environ(b"y" * size, None), LIMIT) == b"y" * size


def test_a_chunked_body_over_the_limit_is_refused_not_cut() -> None:
    env = environ(b"z" * (LIMIT * 3), None)
    with pytest.raises(RequestEntityTooLargeException):
        read_body(env, LIMIT)
    assert env["wsgi.input"].requested == LIMIT + 1  # never more than one byte past the cap


def test_a_chunked_body_without_a_terminated_input_reads_nothing() -> None:
    # Without wsgi.input_terminated a read to the end could block on a keep-alive connection.
    assert read_body(environ(b"{}", None, terminated=False), LIMIT) == b""


@pytest.mark.parametrize("length", ["abc", "-5", "0"])
def test_a_malformed_or_empty_length_reads_nothing(length: str) -> None:
    assert read_body(environ(b"{}", length), LIMIT) == b""


def test_request_ids_are_unique_version_4_uuids() -> None:
    ids = {new_request_id() for _ in range(5000)}
    assert len(ids) == 5000
    for value in list(ids)[:500]:
        assert re.fullmatch(
            r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}", value
        )
        parsed = uuid.UUID(value)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
