"""Reading a request body as S3 does: bounded pieces, ``aws-chunked`` framing removed, and
every integrity claim the client made checked before anything is committed.

Framings:

* ``Content-Length``: exactly that many bytes (fewer is ``IncompleteBody``).
* ``Transfer-Encoding: chunked``: gunicorn removes the HTTP chunking; read to the end.
* ``Content-Encoding: aws-chunked`` (botocore over HTTPS, signed streaming uploads of other
  SDKs): ``hex-size[;chunk-signature=...]\\r\\n data \\r\\n`` ... ``0\\r\\n`` then trailers
  such as ``x-amz-checksum-crc32:...``. Chunk signatures are checked when the request was
  verified as ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` (``sigv4`` mode, :mod:`s3_service.auth`);
  the trailing checksum always is.

Checks, after the last byte: ``Content-MD5`` (``BadDigest``), a hex ``x-amz-content-sha256``
(``XAmzContentSHA256Mismatch``), ``x-amz-checksum-{crc32,sha1,sha256}`` from a header or a
trailer (``BadDigest``), ``x-amz-decoded-content-length``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO, Protocol

from s3_service import errors

PIECE_SIZE = 1024 * 1024
_MAX_LINE = 8192
_HEX_SHA256 = re.compile(r"^[0-9a-f]{64}$")
CHECKSUM_ALGORITHMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")
_VERIFIABLE = ("crc32", "sha1", "sha256")


class HeaderLookup(Protocol):
    def get(self, key: str) -> str | None: ...


class ChunkCheck(Protocol):
    """Checks each aws-chunked chunk's ``chunk-signature`` (see :mod:`s3_service.auth`)."""

    def check(self, signature: str | None, data_sha256: str) -> None: ...


class _Crc32:
    """zlib's CRC-32 behind the hashlib interface (S3 sends it as big-endian base64)."""

    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def _checksum_state(algorithm: str) -> Any:
    if algorithm == "crc32":
        return _Crc32()
    return hashlib.new(algorithm)


class RequestBody:
    """The plaintext of one request body. Iterate :meth:`pieces` once, then call
    :meth:`verify`; afterwards ``md5`` and ``checksum`` hold what was received."""

    def __init__(
        self,
        stream: BinaryIO,
        headers: HeaderLookup,
        *,
        max_size: int,
        chunk_check: ChunkCheck | None = None,
    ) -> None:
        """Raises ``MissingContentLength``, ``EntityTooLarge``, ``InvalidDigest``,
        ``InvalidArgument`` or ``NotImplemented`` for headers that cannot work.
        ``chunk_check`` verifies chunk signatures of a signed aws-chunked body."""
        self._stream = stream
        self._chunk_check = chunk_check
        self._headers = headers
        self._max_size = max_size
        length = headers.get("Content-Length")
        transfer = (headers.get("Transfer-Encoding") or "").lower()
        if length is not None:
            if not length.isdigit():
                raise errors.invalid_argument("Content-Length must be a number", "Content-Length")
            self._wire_length: int | None = int(length)
        elif "chunked" in transfer:
            self._wire_length = None
        else:
            raise errors.missing_content_length()
        encoding = [
            item.strip().lower() for item in (headers.get("Content-Encoding") or "").split(",")
        ]
        sha256_claim = (headers.get("x-amz-content-sha256") or "").strip()
        self.aws_chunked = "aws-chunked" in encoding or sha256_claim.startswith("STREAMING-")
        decoded = headers.get("x-amz-decoded-content-length")
        self._decoded_length = int(decoded) if decoded and decoded.isdigit() else None
        declared = self._decoded_length if self.aws_chunked else self._wire_length
        if declared is not None and declared > max_size:
            raise errors.entity_too_large(declared, max_size)
        self._expected_md5 = self._content_md5(headers.get("Content-MD5"))
        self._sha256_claim = sha256_claim if _HEX_SHA256.match(sha256_claim) else None
        if self.aws_chunked:
            # The header names the payload hash of the framed body, which we do not rebuild.
            self._sha256_claim = None
        self._checksum_algorithm, self._checksum_claim = self._checksum_header(headers)
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._sha256 = hashlib.sha256() if self._sha256_claim else None
        self._checksum = (
            _checksum_state(self._checksum_algorithm) if self._checksum_algorithm else None
        )
        self._trailers: dict[str, str] = {}
        self.size = 0
        self._consumed = False

    @staticmethod
    def _content_md5(value: str | None) -> bytes | None:
        if value is None:
            return None
        try:
            digest = base64.b64decode(value.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise errors.invalid_digest() from None
        if len(digest) != 16:
            raise errors.invalid_digest()
        return digest

    @staticmethod
    def _checksum_header(headers: HeaderLookup) -> tuple[str | None, str | None]:
        trailer = (headers.get("x-amz-trailer") or "").strip().lower()
        for algorithm in CHECKSUM_ALGORITHMS:
            name = f"x-amz-checksum-{algorithm}"
            value = headers.get(name)
            if value is not None or trailer == name:
                if algorithm not in _VERIFIABLE:
                    raise errors.not_implemented(f"the {algorithm.upper()} checksum algorithm")
                return algorithm, value
        if trailer:
            raise errors.invalid_argument(f"Unsupported trailer {trailer}", "x-amz-trailer")
        return None, None

    @property
    def md5(self) -> bytes:
        """MD5 of the plaintext received (valid after :meth:`pieces` is exhausted)."""
        return self._md5.digest()

    @property
    def checksum(self) -> dict[str, str]:
        """``{"crc32": "<base64>"}`` for the checksum the client sent, verified; else {}."""
        if self._checksum is None or self._checksum_algorithm is None:
            return {}
        return {self._checksum_algorithm: base64.b64encode(self._checksum.digest()).decode()}

    def pieces(self) -> Iterator[bytes]:
        """The plaintext in pieces of at most 1 MiB. Raises ``IncompleteBody`` when the
        client sends less than it announced, ``EntityTooLarge`` past the size limit."""
        if self._consumed:
            raise RuntimeError("request body already read")
        self._consumed = True
        source = self._aws_chunked() if self.aws_chunked else self._plain()
        for piece in source:
            self.size += len(piece)
            if self.size > self._max_size:
                raise errors.entity_too_large(self.size, self._max_size)
            self._md5.update(piece)
            if self._sha256 is not None:
                self._sha256.update(piece)
            if self._checksum is not None:
                self._checksum.update(piece)
            yield piece

    def read_all(self, limit: int) -> bytes:
        """The whole body, for small XML documents; verified. Raises ``MalformedXML``-free
        errors of :meth:`pieces` and :meth:`verify`, ``EntityTooLarge`` beyond ``limit``."""
        collected = bytearray()
        for piece in self.pieces():
            collected += piece
            if len(collected) > limit:
                raise errors.entity_too_large(len(collected), limit)
        self.verify()
        return bytes(collected)

    def verify(self) -> None:
        """Check every digest the client sent. Raises ``BadDigest``,
        ``XAmzContentSHA256Mismatch`` or ``IncompleteBody``."""
        if (
            self.aws_chunked
            and self._decoded_length is not None
            and self.size != self._decoded_length
        ):
            raise errors.incomplete_body()
        if self._expected_md5 is not None and self._expected_md5 != self.md5:
            raise errors.bad_digest()
        if self._sha256 is not None and self._sha256_claim is not None:
            computed = self._sha256.hexdigest()
            if computed != self._sha256_claim:
                raise errors.content_sha256_mismatch(self._sha256_claim, computed)
        if self._checksum is not None and self._checksum_algorithm is not None:
            name = f"x-amz-checksum-{self._checksum_algorithm}"
            claim = self._checksum_claim or self._trailers.get(name)
            if claim is None:
                raise errors.invalid_request(f"The trailer {name} was announced but not sent.")
            if self.checksum[self._checksum_algorithm] != claim.strip():
                raise errors.checksum_mismatch(self._checksum_algorithm)

    # --- framings -----------------------------------------------------------------------------
    def _plain(self) -> Iterator[bytes]:
        remaining = self._wire_length
        while remaining is None or remaining > 0:
            want = PIECE_SIZE if remaining is None else min(PIECE_SIZE, remaining)
            piece = _read(self._stream, want)
            if not piece:
                if remaining is not None:
                    raise errors.incomplete_body()
                return
            if remaining is not None:
                remaining -= len(piece)
            yield piece

    def _aws_chunked(self) -> Iterator[bytes]:
        reader = _WireReader(self._stream, self._wire_length)
        while True:
            header = reader.line()
            size_text, _, extension = header.partition(b";")
            try:
                size = int(size_text.strip(), 16)
            except ValueError:
                raise errors.invalid_argument(
                    "Malformed aws-chunked body", "Content-Encoding", "aws-chunked"
                ) from None
            check = self._chunk_check
            signature = None
            if extension.strip().startswith(b"chunk-signature="):
                signature = extension.strip()[len(b"chunk-signature=") :].decode("latin-1")
            chunk_hash = hashlib.sha256() if check is not None else None
            if size == 0:
                if check is not None and chunk_hash is not None:
                    check.check(signature, chunk_hash.hexdigest())
                break
            while size > 0:
                piece = reader.read(min(PIECE_SIZE, size))
                size -= len(piece)
                if chunk_hash is not None:
                    chunk_hash.update(piece)
                    if size == 0 and check is not None:
                        check.check(signature, chunk_hash.hexdigest())
                yield piece
            if reader.line() != b"":
                raise errors.invalid_argument(
                    "Malformed aws-chunked body", "Content-Encoding", "aws-chunked"
                )
        while True:
            line = reader.line(allow_eof=True)
            if not line:
                break
            name, _, value = line.decode("latin-1").partition(":")
            self._trailers[name.strip().lower()] = value.strip()


def _read(stream: BinaryIO, size: int) -> bytes:
    try:
        return stream.read(size)
    except Exception:  # noqa: BLE001 - each server raises its own; all mean an incomplete body
        # The client went away mid-body (gunicorn raises NoMoreData, an IOError) or framed it
        # badly (gunicorn's chunked-encoding parse errors): either way the body is incomplete.
        raise errors.incomplete_body() from None


class _WireReader:
    """Buffered reads of the raw (still aws-chunked) body, never past ``limit`` bytes."""

    def __init__(self, stream: BinaryIO, limit: int | None) -> None:
        self._stream = stream
        self._remaining = limit
        self._buffer = bytearray()
        self._eof = False

    def _fill(self) -> bool:
        if self._eof:
            return False
        want = 64 * 1024 if self._remaining is None else min(64 * 1024, self._remaining)
        data = _read(self._stream, want) if want > 0 else b""
        if not data:
            self._eof = True
            if self._remaining:
                raise errors.incomplete_body()
            return False
        if self._remaining is not None:
            self._remaining -= len(data)
        self._buffer += data
        return True

    def line(self, *, allow_eof: bool = False) -> bytes:
        """One CRLF-terminated line without its CRLF. Raises ``IncompleteBody``."""
        while True:
            end = self._buffer.find(b"\r\n")
            if end >= 0:
                line = bytes(self._buffer[:end])
                del self._buffer[: end + 2]
                return line
            if len(self._buffer) > _MAX_LINE:
                raise errors.invalid_argument(
                    "Malformed aws-chunked body", "Content-Encoding", "aws-chunked"
                )
            if not self._fill():
                if allow_eof and not self._buffer:
                    return b""
                raise errors.incomplete_body()

    def read(self, size: int) -> bytes:
        """Up to ``size`` bytes (at least one). Raises ``IncompleteBody``."""
        if self._buffer:
            piece = bytes(self._buffer[:size])
            del self._buffer[:size]
            return piece
        # Large chunk payloads go straight from the stream, without passing the line buffer.
        want = size if self._remaining is None else min(size, self._remaining)
        data = _read(self._stream, want) if want > 0 else b""
        if not data:
            raise errors.incomplete_body()
        if self._remaining is not None:
            self._remaining -= len(data)
        return data
