"""Building hostile requests byte by byte and reading whatever comes back, for the
hostile-input tests: a raw HTTP/1.1 exchange over a fresh socket (no client library that
would refuse to send a malformed request), the KMS model's member positions, and the checks
every answer must pass (a response, 4xx, AWS-shaped, no internals)."""

from __future__ import annotations

import contextlib
import json
import socket
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from marshmallow import Schema

from kms_service.wire.schemas import SCHEMAS

KMS = "kms"
S3 = "s3"
EITHER = "either"
KMS_CONTENT_TYPE = "application/x-amz-json-1.1"
#: KMS errors that AWS sends with no message (and UnknownOperationException, which mock-kms,
#: like AWS's front end, sends bare).
SILENT_KMS_ERRORS = frozenset(
    {
        "InvalidCiphertextException",
        "KMSInvalidSignatureException",
        "KMSInvalidMacException",
        "UnknownOperationException",
    }
)
#: What must never reach a client: tracebacks, source paths, Python's own class names,
#: HTML pages, the names of the libraries beneath.
INTERNALS = (
    "Traceback", 'File "', "site-packages", "/work/", ".py\"", ".py:", "KeyError", "TypeError",
    "ValueError", "AttributeError", "IndexError", "RecursionError", "UnicodeDecodeError",
    "UnicodeEncodeError", "RuntimeError", "NoneType", "<html", "<!DOCTYPE", "gunicorn",
    "werkzeug", "marshmallow",
)  # fmt: skip


# --- the exchange ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Answer:
    """One HTTP response as read off the socket."""

    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    complete: bool

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), "")


def exchange(
    port: int, request: bytes, *, head: bool = False, timeout: float = 15.0
) -> Answer | None:
    """Send ``request`` on a fresh connection and read one response (interim 1xx skipped).

    None when the connection closed, or stayed silent for ``timeout`` seconds, before a
    complete status line and header section arrived.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        with contextlib.suppress(OSError):  # it may answer and close before reading it all
            sock.sendall(request)
        reader = _Reader(sock)
        try:
            while True:
                start = reader.until(b"\r\n\r\n")
                if start is None:
                    return None
                status, headers = _parse_head(start)
                if not 100 <= status < 200:
                    break
        except (OSError, ValueError):
            return None
        body, complete = _read_body(reader, headers, status, head)
        return Answer(status, headers, body, complete)


class _Reader:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def fill(self) -> bool:
        try:
            data = self.sock.recv(65536)
        except OSError:
            return False
        self.buffer += data
        return bool(data)

    def until(self, marker: bytes) -> bytes | None:
        while marker not in self.buffer:
            if not self.fill():
                return None
        found, _, self.buffer = self.buffer.partition(marker)
        return found

    def exactly(self, size: int) -> bytes | None:
        while len(self.buffer) < size:
            if not self.fill():
                return None
        found, self.buffer = self.buffer[:size], self.buffer[size:]
        return found

    def rest(self) -> bytes:
        while self.fill():
            pass
        found, self.buffer = self.buffer, b""
        return found


def _parse_head(raw: bytes) -> tuple[int, dict[str, str]]:
    lines = raw.decode("latin-1").split("\r\n")
    version, status, *_ = lines[0].split(" ", 2)
    if not version.startswith("HTTP/"):
        raise ValueError(lines[0])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return int(status), headers


def _read_body(
    reader: _Reader, headers: dict[str, str], status: int, head: bool
) -> tuple[bytes, bool]:
    if head or status in (204, 304):
        return b"", True
    if "content-length" in headers:
        body = reader.exactly(int(headers["content-length"]))
        return (body, True) if body is not None else (reader.rest(), False)
    if "chunked" in headers.get("transfer-encoding", "").lower():
        pieces = []
        while (size_line := reader.until(b"\r\n")) is not None:
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                return b"".join(pieces), True
            piece = reader.exactly(size + 2)
            if piece is None:
                break
            pieces.append(piece[:-2])
        return b"".join(pieces), False
    return reader.rest(), True


def http_request(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes = b"",
    *,
    version: bytes = b"HTTP/1.1",
    content_length: bool = True,
) -> bytes:
    """The request's bytes: request line, ``Host``, ``headers`` as given (duplicates, odd
    bytes and all), ``Content-Length`` unless told not to, ``Connection: close``, body."""
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1"]
    lines += [name + b": " + value for name, value in headers]
    if content_length:
        lines.append(b"Content-Length: %d" % len(body))
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def kms_request(
    target: str, body: bytes | Any, extra: list[tuple[bytes, bytes]] | None = None
) -> bytes:
    """A KMS call as an SDK sends it (``POST /``), with a JSON value or raw bytes as body."""
    payload = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = [
        (b"X-Amz-Target", target.encode("latin-1")),
        (b"Content-Type", KMS_CONTENT_TYPE.encode()),
        *(extra or []),
    ]
    return http_request(b"POST", b"/", headers, payload)


# --- the KMS model ---------------------------------------------------------------------------
Path = tuple[str | int, ...]


def member_positions() -> list[tuple[str, Path, Any]]:
    """Every (operation, path, field) a request value can take: each member, and each member
    of a nested structure or of a list of structures (an int step is the list's first item)."""
    positions: list[tuple[str, Path, Any]] = []
    for operation, schema in SCHEMAS.items():
        positions += _positions(operation, schema(), ())
    return positions


def _positions(operation: str, schema: Schema, prefix: Path) -> Iterator[tuple[str, Path, Any]]:
    for name, member in schema.fields.items():
        path = (*prefix, name)
        yield operation, path, member
        nested = getattr(member, "schema", None)
        if isinstance(nested, type):
            yield from _positions(operation, nested(), path)
        listed = getattr(member, "member", None)
        if isinstance(listed, type):
            yield from _positions(operation, listed(), (*path, 0))


def placed(path: Path, value: Any) -> dict[str, Any]:
    """The request body with ``value`` at ``path``."""
    for step in reversed(path):
        value = [value] if isinstance(step, int) else {step: value}
    body: dict[str, Any] = value
    return body


def nested(depth: int, kind: str) -> str:
    """JSON text of a value ``depth`` arrays/objects deep: ``list``, ``object`` or ``mixed``
    (written directly: json.dumps itself recurses, and fails past about 1,000 levels)."""
    opening, closing = [], []
    for level in range(depth):
        as_list = kind == "list" or (kind == "mixed" and level % 2 == 1)
        opening.append("[" if as_list else '{"m":')
        closing.append("]" if as_list else "}")
    return "".join(reversed(opening)) + '"x"' + "".join(closing)


def deep_body(path: Path, depth: int, kind: str) -> bytes:
    """A request body with a value ``depth`` levels deep at ``path``."""
    marker = "\u0000deep\u0000"
    text = json.dumps(placed(path, marker)).replace(json.dumps(marker), nested(depth, kind))
    return text.encode()


# --- the checks -------------------------------------------------------------------------------
@dataclass
class Tally:
    """Counts over every hostile request sent, for the figures the test prints."""

    requests: int = 0
    families: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    services: Counter[str] = field(default_factory=Counter)
    server_errors: int = 0
    closed: int = 0
    not_implemented: int = 0

    def record(self, family: str, answer: Answer | None, service: str | None) -> None:
        self.requests += 1
        self.families[family] += 1
        if answer is None:
            self.closed += 1
            return
        self.statuses[answer.status] += 1
        self.services[service or "unshaped"] += 1
        if answer.status == 501 and service == S3:
            self.not_implemented += 1
        elif answer.status >= 500:
            self.server_errors += 1

    def figures(self) -> str:
        families = ", ".join(f"{name} {count}" for name, count in sorted(self.families.items()))
        return (
            f"hostile requests: {self.requests} ({families}); answered KMS-shaped "
            f"{self.services[KMS]}, S3-shaped {self.services[S3]}; 5xx server errors "
            f"{self.server_errors}; closed without a response {self.closed}; S3 501 "
            f"NotImplemented {self.not_implemented}"
        )


def shape_of(answer: Answer) -> str | None:
    """Which service's error shape ``answer`` has, judged by its content type."""
    content_type = answer.header("Content-Type").split(";")[0].strip()
    if content_type == KMS_CONTENT_TYPE:
        return KMS
    if content_type == "application/xml":
        return S3
    return None


def check_answer(
    answer: Answer | None, request: bytes, expected: str, *, head: bool, kms_type: str | None
) -> None:
    """The hostile-input contract for one answer (raises AssertionError naming the request):
    a response, 4xx (S3's documented 501 NotImplemented aside), the expected service's
    error shape, no internals."""
    shown = request[:300]
    assert answer is not None, f"no response to {shown!r}"
    assert answer.complete, f"truncated response to {shown!r}"
    service = shape_of(answer)
    assert service is not None, (
        f"unshaped answer {answer.status} {answer.body[:300]!r} to {shown!r}"
    )
    assert expected in (EITHER, service), f"{service} answer to a {expected} request {shown!r}"
    not_implemented = service == S3 and answer.status == 501
    assert 400 <= answer.status < 500 or not_implemented, (
        f"status {answer.status} {answer.body[:300]!r} for {shown!r}"
    )
    text = answer.body.decode("utf-8", "replace")
    for internal in INTERNALS:
        assert internal not in text, f"{internal!r} in {text[:300]!r} for {shown!r}"
    if service == KMS:
        _check_kms(answer, shown, head=head, kms_type=kms_type)
    else:
        _check_s3(answer, shown, head=head)


def _check_kms(answer: Answer, shown: bytes, *, head: bool, kms_type: str | None) -> None:
    error_type = answer.header("X-Amzn-ErrorType")
    assert answer.header("x-amzn-RequestId"), f"no request id for {shown!r}"
    if head:
        assert error_type, f"no X-Amzn-ErrorType for {shown!r}"
        return
    body = json.loads(answer.body)
    assert isinstance(body, dict) and isinstance(body.get("__type"), str) and body["__type"]
    assert body["__type"] == error_type, (body, error_type)
    if body["__type"] not in SILENT_KMS_ERRORS:
        assert isinstance(body.get("message"), str) and body["message"].strip(), body
    if kms_type is not None:
        assert body["__type"] == kms_type, f"{body} for {shown!r}"


def _check_s3(answer: Answer, shown: bytes, *, head: bool) -> None:
    request_id = answer.header("x-amz-request-id")
    assert request_id, f"no x-amz-request-id for {shown!r}"
    if head:
        return
    root = ET.fromstring(answer.body)
    assert root.tag == "Error", answer.body[:300]
    code, message = root.findtext("Code") or "", root.findtext("Message") or ""
    assert code.strip() and message.strip(), f"{answer.body[:300]!r} for {shown!r}"
    assert root.findtext("RequestId") == request_id
