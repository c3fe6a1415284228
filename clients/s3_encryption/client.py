"""``EncryptingS3Client``: client-side encryption around any boto3-shaped S3 client.

Objects are written in the S3 Encryption Client V3 format (V2 on request), with the envelope
in object metadata or an instruction file, and read back from V2/V3 (V1 behind an opt-in).
Large objects stream: uploads go multipart through one GCM stream, downloads decrypt chunk by
chunk, so memory stays bounded by the part size and the buffer size, not the object size.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import os
import re
import tempfile
from collections.abc import Callable, Iterator, Mapping
from typing import IO, Any, BinaryIO

from clients.s3_encryption.body import DEFAULT_CHUNK_SIZE, PlaintextBody
from clients.s3_encryption.content import (
    CbcContentDecryptor,
    ContentDecryptor,
    ContentEncryptor,
    CtrRangeDecryptor,
    GcmContentDecryptor,
    check_content_length,
    crypto_range,
    ctr_key_and_iv,
    start_decryption,
    start_encryption,
)
from clients.s3_encryption.errors import (
    InvalidRangeError,
    LegacyFormatError,
    RangedGetNotAllowedError,
    S3EncryptionError,
    TruncatedObjectError,
    UnknownFormatError,
)
from clients.s3_encryption.formats import (
    GCM_MAX_CONTENT_LENGTH,
    GCM_TAG_LENGTH,
    ContentAlgorithm,
    FormatVersion,
    MetadataStorage,
)
from clients.s3_encryption.keyrings import Keyring, aws_error_code
from clients.s3_encryption.metadata import (
    DEFAULT_INSTRUCTION_FILE_SUFFIX,
    ENVELOPE_KEYS,
    INSTRUCTION_FILE_MARKER,
    INSTRUCTION_FILE_OBJECT_METADATA,
    MAX_INSTRUCTION_FILE_SIZE,
    Envelope,
    decode_envelope,
    encode_envelope,
    parse_instruction_file,
    split_for_instruction_file,
)

DEFAULT_PART_SIZE = 8 * 1024 * 1024
DEFAULT_BUFFER_SIZE = 64 * 1024 * 1024
MAX_PARTS = 10_000

ProgressCallback = Callable[[int], None]

# Arguments that must accompany every request touching the object (SSE-C layered under CSE,
# bucket-owner and requester-pays checks), so they are repeated on parts and instruction files.
_PER_REQUEST_ARGS = (
    "SSECustomerAlgorithm",
    "SSECustomerKey",
    "SSECustomerKeyMD5",
    "ExpectedBucketOwner",
    "RequestPayer",
)
# Integrity values computed by the caller describe the plaintext, but S3 receives ciphertext.
_REJECTED_PUT_ARGS = frozenset(
    {
        "ContentMD5",
        "ContentLength",
        "ChecksumCRC32",
        "ChecksumCRC32C",
        "ChecksumCRC64NVME",
        "ChecksumSHA1",
        "ChecksumSHA256",
    }
)
_RANGE_PATTERN = re.compile(r"^bytes=(\d*)-(\d*)$")


def _botocore_stream_errors() -> tuple[type[BaseException], ...]:
    # botocore raises these when a download ends early; imported lazily so the package does
    # not need botocore unless a botocore client is used.
    try:
        module = importlib.import_module("botocore.exceptions")
    except ImportError:
        return ()
    names = ("IncompleteReadError", "ResponseStreamingError")
    return tuple(getattr(module, name) for name in names if hasattr(module, name))


_STREAM_ERRORS = _botocore_stream_errors()


def _read_full(fileobj: IO[bytes], size: int) -> bytes:
    """Read exactly ``size`` bytes unless the stream ends first (pipes return short reads)."""
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = fileobj.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _read_part(fileobj: IO[bytes], buffer: memoryview) -> memoryview | bytes:
    """The next ``len(buffer)`` bytes of the stream (fewer only at its end).

    Read into ``buffer`` (reused for every part, so no part costs a fresh allocation) when
    the stream has ``readinto``; otherwise the stream's own ``read`` result.
    """
    filled = 0
    try:
        while filled < len(buffer):
            count = fileobj.readinto(buffer[filled:])  # type: ignore[attr-defined]
            if not count:
                break
            filled += count
    except (AttributeError, NotImplementedError, io.UnsupportedOperation):
        if filled:
            raise
        return _read_full(fileobj, len(buffer))
    return buffer[:filled]


def _remaining_length(fileobj: IO[bytes]) -> int | None:
    """Bytes left in a seekable stream, or None if it cannot tell."""
    try:
        position = fileobj.tell()
        end = fileobj.seek(0, os.SEEK_END)
        fileobj.seek(position)
    except (OSError, AttributeError, ValueError):
        return None
    return max(0, end - position)


def _read_body(body: Any, chunk_size: int = DEFAULT_CHUNK_SIZE) -> Iterator[bytes]:
    """Chunks of an S3 response body; a download that ends early is a TruncatedObjectError."""
    while True:
        try:
            chunk = body.read(chunk_size)
        except _STREAM_ERRORS as exc:
            raise TruncatedObjectError(f"download ended before the whole object: {exc}") from exc
        if not chunk:
            return
        yield chunk


def _parse_range(spec: str) -> tuple[int | None, int | None]:
    """``bytes=a-b`` -> (a, b); ``bytes=a-`` -> (a, None); ``bytes=-n`` -> (None, n)."""
    match = _RANGE_PATTERN.match(spec.strip())
    if match is None or match.group(1) == match.group(2) == "":
        raise InvalidRangeError(f"unsupported Range {spec!r}: use bytes=a-b, bytes=a- or bytes=-n")
    first = int(match.group(1)) if match.group(1) else None
    last = int(match.group(2)) if match.group(2) else None
    if first is not None and last is not None and last < first:
        raise InvalidRangeError(f"Range {spec!r} ends before it starts")
    return first, last


def _content_range(response: Mapping[str, Any]) -> tuple[int, int]:
    """(first byte offset, total object length) of a GET response, ranged or not."""
    header = response.get("ContentRange")
    if not header:
        return 0, int(response["ContentLength"])
    match = re.match(r"^bytes (\d+)-(\d+)/(\d+)$", str(header))
    if match is None:
        raise S3EncryptionError(f"S3 returned an unparseable Content-Range {header!r}")
    return int(match.group(1)), int(match.group(3))


class EncryptingS3Client:
    """Client-side encryption (CSE-KMS, CSE-C) around a boto3 S3 client.

    Method names and keyword arguments follow boto3; every method also takes
    ``EncryptionContext`` (KMS keyrings only; it must be given identically on read).

    Parameters:
        s3_client: a boto3 S3 client (any endpoint: AWS, MinIO, moto, ...). It is not
            modified; ``.s3_client`` gives it back for plain calls.
        keyring: a :class:`~clients.s3_encryption.keyrings.KmsKeyring`, ``AesGcmKeyring`` or
            ``RsaOaepKeyring``.
        format_version: ``FormatVersion.V3`` (default, key-committing) or ``V2``.
        metadata_storage: envelope in object metadata (default) or ``<key>.instruction``.
        part_size: plaintext bytes per multipart part and the single-PUT threshold; a
            multiple of 16 (S3 itself wants at least 5 MiB for all but the last part).
        allow_legacy_formats: also read V1, AES-CBC and legacy-wrapped (``kms``, ``AESWrap``,
            ``AES``, ``RSA``) objects. Off by default: they are unauthenticated or weaker.
        allow_unauthenticated_ranged_get: allow ``Range=`` on ``get_object``. Ranges are
            decrypted with AES-CTR and cannot be authenticated (Java's legacy opt-in).
        delayed_authentication: ``get_object`` / ``download_fileobj`` stream plaintext before
            the tag is checked (it is checked at the end and raises then). Off by default:
            plaintext is released only after the whole object authenticated.
        buffer_size: bytes kept in memory while verifying before release; more spills to a
            temporary file, so memory stays bounded for any object size.
        instruction_file_suffix: suffix of instruction files on read (writes always use
            ``.instruction``, as the specification requires).
    """

    def __init__(
        self,
        s3_client: Any,
        keyring: Keyring,
        *,
        format_version: FormatVersion = FormatVersion.V3,
        metadata_storage: MetadataStorage = MetadataStorage.OBJECT_METADATA,
        part_size: int = DEFAULT_PART_SIZE,
        allow_legacy_formats: bool = False,
        allow_unauthenticated_ranged_get: bool = False,
        delayed_authentication: bool = False,
        buffer_size: int = DEFAULT_BUFFER_SIZE,
        instruction_file_suffix: str = DEFAULT_INSTRUCTION_FILE_SUFFIX,
    ) -> None:
        if format_version is FormatVersion.V1:
            raise ValueError("V1 is read-only; write V3 (default) or V2")
        if part_size <= 0 or part_size % 16:
            raise ValueError("part_size must be a positive multiple of 16 bytes")
        if buffer_size < 0:
            raise ValueError("buffer_size must not be negative")
        self.s3_client = s3_client
        self.keyring = keyring
        self.format_version = format_version
        self.metadata_storage = metadata_storage
        self.part_size = part_size
        self.allow_legacy_formats = allow_legacy_formats
        self.allow_unauthenticated_ranged_get = allow_unauthenticated_ranged_get
        self.delayed_authentication = delayed_authentication
        self.buffer_size = buffer_size
        self.instruction_file_suffix = instruction_file_suffix

    # ------------------------------------------------------------------ writing

    @property
    def _content_algorithm(self) -> ContentAlgorithm:
        if self.format_version is FormatVersion.V3:
            return ContentAlgorithm.AES_GCM_COMMITTING
        return ContentAlgorithm.AES_GCM

    def _begin_object(
        self, encryption_context: Mapping[str, str] | None
    ) -> tuple[ContentEncryptor, Envelope]:
        algorithm = self._content_algorithm
        data_key = self.keyring.wrap_data_key(algorithm, encryption_context or {})
        encryptor, parameters = start_encryption(algorithm, data_key.plaintext)
        envelope = Envelope(
            version=self.format_version,
            content_algorithm=algorithm,
            wrap_algorithm=data_key.wrap_algorithm,
            encrypted_data_key=data_key.encrypted,
            materials_description=dict(data_key.materials_description),
            iv=parameters.iv,
            message_id=parameters.message_id,
            key_commitment=parameters.key_commitment,
        )
        return encryptor, envelope

    def _store_envelope(
        self, bucket: str, key: str, envelope: Envelope, request_args: dict[str, Any]
    ) -> dict[str, str]:
        """Metadata for the data object; writes the instruction file first if configured.

        Java writes the instruction file before the object, so a reader that sees the new
        object also finds its envelope.
        """
        user_metadata = dict(request_args.pop("Metadata", None) or {})
        clashing = {
            k for k in user_metadata if k.lower() in ENVELOPE_KEYS | {INSTRUCTION_FILE_MARKER}
        }
        if clashing:
            raise ValueError(f"Metadata keys {sorted(clashing)} are reserved for the envelope")
        if self.metadata_storage is MetadataStorage.OBJECT_METADATA:
            return {**user_metadata, **encode_envelope(envelope)}
        on_object, instruction_body = split_for_instruction_file(envelope)
        sse_args = {
            k: v
            for k, v in request_args.items()
            if k.startswith(("SSE", "ServerSideEncryption", "BucketKey")) or k in _PER_REQUEST_ARGS
        }
        self.s3_client.put_object(
            Bucket=bucket,
            Key=key + DEFAULT_INSTRUCTION_FILE_SUFFIX,
            Body=instruction_body,
            Metadata=dict(INSTRUCTION_FILE_OBJECT_METADATA),
            **sse_args,
        )
        return {**user_metadata, **on_object}

    @staticmethod
    def _check_put_args(request_args: Mapping[str, Any]) -> None:
        rejected = _REJECTED_PUT_ARGS & set(request_args)
        if rejected:
            raise ValueError(
                f"{sorted(rejected)} describe the plaintext but S3 receives ciphertext; "
                "drop them (the SDK computes checksums of what it sends)"
            )

    def put_object(
        self,
        *,
        Bucket: str,
        Key: str,
        Body: bytes | bytearray | str | IO[bytes] = b"",
        EncryptionContext: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Encrypt ``Body`` and store it with one PUT; returns S3's PutObject response.

        The whole body is held in memory (like boto3's ``put_object`` with bytes); use
        :meth:`upload_file` / :meth:`upload_fileobj` for large objects. Other keyword
        arguments (``ContentType``, ``Metadata``, SSE headers, ...) go to S3 unchanged.
        Raises ObjectTooLargeError, InvalidEncryptionContextError, KeyringError, ValueError
        for plaintext checksums or reserved metadata keys, and botocore errors from S3.
        """
        self._check_put_args(kwargs)
        if isinstance(Body, str):
            plaintext = Body.encode("utf-8")
        elif isinstance(Body, bytes | bytearray):
            plaintext = bytes(Body)
        else:
            plaintext = Body.read()
        check_content_length(len(plaintext))
        encryptor, envelope = self._begin_object(EncryptionContext)
        ciphertext = encryptor.update(plaintext) + encryptor.finalize()
        request_args = dict(kwargs)
        metadata = self._store_envelope(Bucket, Key, envelope, request_args)
        response: dict[str, Any] = self.s3_client.put_object(
            Bucket=Bucket, Key=Key, Body=ciphertext, Metadata=metadata, **request_args
        )
        return response

    def upload_fileobj(
        self,
        Fileobj: IO[bytes],
        Bucket: str,
        Key: str,
        ExtraArgs: Mapping[str, Any] | None = None,
        Callback: ProgressCallback | None = None,
        EncryptionContext: Mapping[str, str] | None = None,
    ) -> None:
        """Encrypt a binary stream into ``Bucket/Key`` in constant memory.

        Streams shorter than ``part_size`` go up in one PUT; longer ones as a multipart upload
        whose parts are consecutive pieces of one GCM stream (the tag closes the last part).
        ``Callback`` gets the number of plaintext bytes sent after each request. The 64 GiB
        GCM limit is checked before anything is uploaded when the stream can tell its size.
        Raises ObjectTooLargeError, ValueError (too many parts for ``part_size``), keyring
        errors and botocore errors; a failed multipart upload is aborted.
        """
        request_args = dict(ExtraArgs or {})
        self._check_put_args(request_args)
        remaining = _remaining_length(Fileobj)
        if remaining is not None:
            check_content_length(remaining)
            parts_needed = remaining // self.part_size + 1
            if parts_needed > MAX_PARTS:
                raise ValueError(
                    f"{remaining} bytes need {parts_needed} parts of {self.part_size} bytes; "
                    f"S3 allows {MAX_PARTS}: raise part_size"
                )
        part_buffer = memoryview(bytearray(self.part_size))
        first = _read_part(Fileobj, part_buffer)
        encryptor, envelope = self._begin_object(EncryptionContext)
        if len(first) < self.part_size:
            ciphertext = encryptor.update(bytes(first)) + encryptor.finalize()
            metadata = self._store_envelope(Bucket, Key, envelope, request_args)
            self.s3_client.put_object(
                Bucket=Bucket, Key=Key, Body=ciphertext, Metadata=metadata, **request_args
            )
            if Callback is not None:
                Callback(len(first))
            return
        metadata = self._store_envelope(Bucket, Key, envelope, request_args)
        self._multipart_upload(
            Fileobj, part_buffer, first, Bucket, Key, encryptor, metadata, request_args, Callback
        )

    def _multipart_upload(
        self,
        fileobj: IO[bytes],
        part_buffer: memoryview,
        first: memoryview | bytes,
        bucket: str,
        key: str,
        encryptor: ContentEncryptor,
        metadata: dict[str, str],
        request_args: dict[str, Any],
        callback: ProgressCallback | None,
    ) -> None:
        per_part = {k: v for k, v in request_args.items() if k in _PER_REQUEST_ARGS}
        created = self.s3_client.create_multipart_upload(
            Bucket=bucket, Key=key, Metadata=metadata, **request_args
        )
        upload_id = created["UploadId"]
        parts: list[dict[str, Any]] = []
        # Every full part is encrypted into this one buffer and handed to S3 as it is: reused
        # only once upload_part returned, so a retry inside that call re-reads intact bytes.
        ciphertext_buffer = bytearray(self.part_size)
        try:
            chunk = first
            while True:
                # A full part cannot be the last one: a file that is an exact multiple of the
                # part size ends with a 16-byte part holding only the tag (S3 allows a small
                # last part), so no read-ahead buffer is needed.
                last = len(chunk) < self.part_size
                written = encryptor.update_into(chunk, ciphertext_buffer)
                ciphertext: bytes | bytearray = ciphertext_buffer
                if last:
                    ciphertext = ciphertext_buffer[:written] + encryptor.finalize()
                number = len(parts) + 1
                answer = self.s3_client.upload_part(
                    Bucket=bucket,
                    Key=key,
                    UploadId=upload_id,
                    PartNumber=number,
                    Body=ciphertext,
                    **per_part,
                )
                parts.append({"PartNumber": number, "ETag": answer["ETag"]})
                del ciphertext
                if callback is not None:
                    callback(len(chunk))
                if last:
                    break
                chunk = _read_part(fileobj, part_buffer)
            self.s3_client.complete_multipart_upload(
                Bucket=bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                **per_part,
            )
        except BaseException:
            with contextlib.suppress(Exception):
                self.s3_client.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
            raise

    def upload_file(
        self,
        Filename: str | os.PathLike[str],
        Bucket: str,
        Key: str,
        ExtraArgs: Mapping[str, Any] | None = None,
        Callback: ProgressCallback | None = None,
        EncryptionContext: Mapping[str, str] | None = None,
    ) -> None:
        """Encrypt a local file into ``Bucket/Key``; see :meth:`upload_fileobj`."""
        check_content_length(os.path.getsize(Filename))
        with open(Filename, "rb") as fileobj:
            self.upload_fileobj(
                fileobj,
                Bucket,
                Key,
                ExtraArgs=ExtraArgs,
                Callback=Callback,
                EncryptionContext=EncryptionContext,
            )

    def delete_object(self, *, Bucket: str, Key: str, **kwargs: Any) -> dict[str, Any]:
        """Delete the object and its ``.instruction`` file (as Java and Python S3EC do)."""
        response: dict[str, Any] = self.s3_client.delete_object(Bucket=Bucket, Key=Key, **kwargs)
        self.s3_client.delete_object(
            Bucket=Bucket,
            Key=Key + DEFAULT_INSTRUCTION_FILE_SUFFIX,
            **{k: v for k, v in kwargs.items() if k in _PER_REQUEST_ARGS},
        )
        return response

    # ------------------------------------------------------------------ reading

    def _load_envelope(
        self,
        metadata: Mapping[str, str],
        bucket: str,
        key: str,
        suffix: str | None,
        request_args: Mapping[str, Any],
    ) -> Envelope:
        instruction_key = key + (suffix or self.instruction_file_suffix)
        per_request = {k: v for k, v in request_args.items() if k in _PER_REQUEST_ARGS}

        def load_instruction_file() -> dict[str, str] | None:
            try:
                response = self.s3_client.get_object(
                    Bucket=bucket, Key=instruction_key, **per_request
                )
            except Exception as exc:
                if aws_error_code(exc) in ("NoSuchKey", "404"):
                    return None
                raise
            with contextlib.closing(response["Body"]) as body:
                data: bytes = body.read(MAX_INSTRUCTION_FILE_SIZE + 1)
            return parse_instruction_file(data)

        return decode_envelope(metadata, load_instruction_file)

    def _unwrap(self, envelope: Envelope, encryption_context: Mapping[str, str] | None) -> bytes:
        if envelope.is_legacy and not self.allow_legacy_formats:
            raise LegacyFormatError(
                f"{envelope.version.name} object with {envelope.content_algorithm.value} content "
                f"and {envelope.wrap_algorithm.value!r} key wrap is a legacy format; pass "
                "allow_legacy_formats=True to read it"
            )
        return self.keyring.unwrap_data_key(envelope, encryption_context or {})

    def _open_decryptor(
        self,
        response: Mapping[str, Any],
        bucket: str,
        key: str,
        encryption_context: Mapping[str, str] | None,
        suffix: str | None,
        request_args: Mapping[str, Any],
    ) -> ContentDecryptor:
        if response.get("ContentRange"):
            raise S3EncryptionError("S3 returned part of the object to a whole-object request")
        envelope = self._load_envelope(
            response.get("Metadata") or {}, bucket, key, suffix, request_args
        )
        data_key = self._unwrap(envelope, encryption_context)
        return start_decryption(
            envelope.content_algorithm,
            data_key,
            iv=envelope.iv,
            message_id=envelope.message_id,
            key_commitment=envelope.key_commitment,
        )

    @staticmethod
    def _decrypt_chunks(
        body: Any, decryptor: ContentDecryptor, callback: ProgressCallback | None = None
    ) -> Iterator[bytes | memoryview]:
        """Plaintext chunks of ``body``. GCM chunks are views of one reused buffer: each is
        valid only until the next one is requested (consumers copy or write it at once)."""
        if isinstance(decryptor, GcmContentDecryptor):
            yield from EncryptingS3Client._decrypt_gcm_chunks(body, decryptor, callback)
            return
        for chunk in _read_body(body):
            plaintext = decryptor.update(chunk)
            if plaintext:
                if callback is not None:
                    callback(len(plaintext))
                yield plaintext
        plaintext = decryptor.finalize()
        if plaintext:
            if callback is not None:
                callback(len(plaintext))
            yield plaintext

    @staticmethod
    def _decrypt_gcm_chunks(
        body: Any, decryptor: GcmContentDecryptor, callback: ProgressCallback | None
    ) -> Iterator[bytes | memoryview]:
        buffer = bytearray(DEFAULT_CHUNK_SIZE + GCM_TAG_LENGTH)
        for chunk in _read_body(body):
            if len(buffer) < len(chunk) + GCM_TAG_LENGTH:
                buffer = bytearray(len(chunk) + GCM_TAG_LENGTH)
            written = decryptor.update_into(chunk, buffer)
            if written:
                if callback is not None:
                    callback(written)
                with memoryview(buffer) as view, view[:written] as plaintext:
                    yield plaintext
        plaintext_tail = decryptor.finalize()
        if plaintext_tail:
            if callback is not None:
                callback(len(plaintext_tail))
            yield plaintext_tail

    def _get_and_open(
        self,
        bucket: str,
        key: str,
        encryption_context: Mapping[str, str] | None,
        suffix: str | None,
        request_args: Mapping[str, Any],
    ) -> tuple[dict[str, Any], ContentDecryptor]:
        if "PartNumber" in request_args or "Range" in request_args:
            raise ValueError("use get_object(Range=...) for partial reads")
        response: dict[str, Any] = self.s3_client.get_object(Bucket=bucket, Key=key, **request_args)
        try:
            decryptor = self._open_decryptor(
                response, bucket, key, encryption_context, suffix, request_args
            )
        except BaseException:
            response["Body"].close()
            raise
        return response, decryptor

    def _spool(
        self,
        body: Any,
        decryptor: ContentDecryptor,
        callback: ProgressCallback | None = None,
    ) -> tuple[IO[bytes], int]:
        """Decrypt everything into a spool (memory up to buffer_size, then disk) and verify."""
        spool = tempfile.SpooledTemporaryFile(max_size=self.buffer_size)  # noqa: SIM115 - returned
        try:
            for plaintext in self._decrypt_chunks(body, decryptor, callback):
                spool.write(plaintext)
            length = spool.tell()
            spool.seek(0)
        except BaseException:
            spool.close()
            raise
        finally:
            body.close()
        return spool, length

    def get_object(
        self,
        *,
        Bucket: str,
        Key: str,
        EncryptionContext: Mapping[str, str] | None = None,
        Range: str | None = None,
        InstructionFileSuffix: str | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Fetch and decrypt an object; returns S3's response with a plaintext ``Body``.

        By default the whole object is decrypted and authenticated before this returns (held
        in memory up to ``buffer_size``, beyond that in a temporary file); with
        ``delayed_authentication`` the body streams and a failed tag raises at its end.
        ``ContentLength`` is the plaintext length. ``Range=`` (``bytes=a-b``, ``bytes=a-``,
        ``bytes=-n``) needs ``allow_unauthenticated_ranged_get``: it is CTR-decrypted from
        the widened ciphertext range and cannot be authenticated.

        Raises UnknownFormatError, TamperedMetadataError, LegacyFormatError, WrongKeyError,
        EncryptionContextMismatchError, KeyCommitmentError, TamperedObjectError,
        TruncatedObjectError, RangedGetNotAllowedError, InvalidRangeError, botocore errors.
        """
        if Range is not None:
            return self._ranged_get(
                Bucket, Key, Range, EncryptionContext, InstructionFileSuffix, kwargs
            )
        response, decryptor = self._get_and_open(
            Bucket, Key, EncryptionContext, InstructionFileSuffix, kwargs
        )
        body = response["Body"]
        if self.delayed_authentication:
            streamed: int | None = None
            if not isinstance(decryptor, CbcContentDecryptor):
                # GCM: exactly the tag shorter. CBC padding is only known at the end.
                streamed = max(int(response.get("ContentLength", 0)) - GCM_TAG_LENGTH, 0)
            response["Body"] = PlaintextBody(
                self._decrypt_chunks(body, decryptor), body.close, streamed
            )
            if streamed is None:
                response.pop("ContentLength", None)
            else:
                response["ContentLength"] = streamed
        else:
            spool, length = self._spool(body, decryptor)
            response["Body"] = PlaintextBody(
                iter(lambda: spool.read(DEFAULT_CHUNK_SIZE), b""), spool.close, length
            )
            response["ContentLength"] = length
        return response

    def _ranged_get(
        self,
        bucket: str,
        key: str,
        range_spec: str,
        encryption_context: Mapping[str, str] | None,
        suffix: str | None,
        request_args: Mapping[str, Any],
    ) -> dict[str, Any]:
        if not self.allow_unauthenticated_ranged_get:
            raise RangedGetNotAllowedError(
                "ranged GET decrypts with AES-CTR and cannot authenticate the data; pass "
                "allow_unauthenticated_ranged_get=True to accept that"
            )
        first, last = _parse_range(range_spec)
        per_request = {k: v for k, v in request_args.items() if k in _PER_REQUEST_ARGS}
        if first is None:
            assert last is not None  # _parse_range guarantees one of them
            head = self.s3_client.head_object(Bucket=bucket, Key=key, **per_request)
            plaintext_length = int(head["ContentLength"]) - GCM_TAG_LENGTH
            if last == 0 or plaintext_length <= 0:
                raise InvalidRangeError(f"Range {range_spec!r} selects no bytes of the object")
            first, last = max(0, plaintext_length - last), plaintext_length - 1
        low, high = crypto_range(first, first if last is None else last)
        s3_range = f"bytes={low}-" if last is None else f"bytes={low}-{high}"
        try:
            response: dict[str, Any] = self.s3_client.get_object(
                Bucket=bucket, Key=key, Range=s3_range, **request_args
            )
        except Exception as exc:
            if aws_error_code(exc) == "InvalidRange":
                raise InvalidRangeError(f"Range {range_spec!r} is beyond the object") from exc
            raise
        body = response["Body"]
        try:
            start, total = _content_range(response)
            envelope = self._load_envelope(
                response.get("Metadata") or {}, bucket, key, suffix, request_args
            )
            if envelope.content_algorithm is ContentAlgorithm.AES_CBC:
                raise UnknownFormatError("ranged GET works only on AES-GCM (V2/V3) objects")
            data_key = self._unwrap(envelope, encryption_context)
            content_key, iv = ctr_key_and_iv(
                envelope.content_algorithm,
                data_key,
                iv=envelope.iv,
                message_id=envelope.message_id,
                key_commitment=envelope.key_commitment,
            )
            plaintext_length = total - GCM_TAG_LENGTH
            if plaintext_length < 0:
                raise TruncatedObjectError("object is shorter than its authentication tag")
            if first >= plaintext_length:
                raise InvalidRangeError(
                    f"Range {range_spec!r} starts beyond the {plaintext_length}-byte object"
                )
            end = plaintext_length - 1 if last is None else min(last, plaintext_length - 1)
            decryptor = CtrRangeDecryptor(content_key, iv, start)
        except BaseException:
            body.close()
            raise
        wanted = end - first + 1
        response["Body"] = PlaintextBody(
            self._slice(body, decryptor, first - start, wanted), body.close, wanted
        )
        response["ContentLength"] = wanted
        response["ContentRange"] = f"bytes {first}-{end}/{plaintext_length}"
        return response

    @staticmethod
    def _slice(body: Any, decryptor: CtrRangeDecryptor, skip: int, wanted: int) -> Iterator[bytes]:
        """CTR-decrypt the body, drop ``skip`` leading bytes and stop after ``wanted`` bytes."""
        for chunk in _read_body(body):
            plaintext = decryptor.update(chunk)
            if skip:
                dropped = min(skip, len(plaintext))
                plaintext, skip = plaintext[dropped:], skip - dropped
            if plaintext:
                plaintext = plaintext[:wanted]
                wanted -= len(plaintext)
                yield plaintext
            if wanted == 0:
                return
        raise TruncatedObjectError("download ended before the requested range")

    def download_file(
        self,
        Bucket: str,
        Key: str,
        Filename: str | os.PathLike[str],
        ExtraArgs: Mapping[str, Any] | None = None,
        Callback: ProgressCallback | None = None,
        EncryptionContext: Mapping[str, str] | None = None,
    ) -> None:
        """Decrypt ``Bucket/Key`` into a local file in constant memory.

        Plaintext goes to a temporary file beside ``Filename`` that replaces it only after the
        object authenticated, so a tampered object never leaves a file behind. ``Callback``
        gets plaintext byte counts. Raises what :meth:`get_object` raises.
        """
        target = os.path.abspath(os.fspath(Filename))
        response, decryptor = self._get_and_open(
            Bucket, Key, EncryptionContext, None, dict(ExtraArgs or {})
        )
        body = response["Body"]
        handle, temporary = tempfile.mkstemp(
            dir=os.path.dirname(target), prefix=f".{os.path.basename(target)}.", suffix=".part"
        )
        try:
            with os.fdopen(handle, "wb") as out:
                for plaintext in self._decrypt_chunks(body, decryptor, Callback):
                    out.write(plaintext)
            os.replace(temporary, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        finally:
            body.close()

    def download_fileobj(
        self,
        Bucket: str,
        Key: str,
        Fileobj: IO[bytes] | BinaryIO,
        ExtraArgs: Mapping[str, Any] | None = None,
        Callback: ProgressCallback | None = None,
        EncryptionContext: Mapping[str, str] | None = None,
    ) -> None:
        """Decrypt ``Bucket/Key`` into a writable binary stream.

        Without ``delayed_authentication`` nothing is written to ``Fileobj`` until the object
        authenticated (the plaintext waits in a spool: memory up to ``buffer_size``, then a
        temporary file). Raises what :meth:`get_object` raises.
        """
        response, decryptor = self._get_and_open(
            Bucket, Key, EncryptionContext, None, dict(ExtraArgs or {})
        )
        body = response["Body"]
        if self.delayed_authentication:
            try:
                for plaintext in self._decrypt_chunks(body, decryptor, Callback):
                    Fileobj.write(plaintext)
            finally:
                body.close()
            return
        spool, _ = self._spool(body, decryptor, Callback)
        with spool:
            for chunk in iter(lambda: spool.read(DEFAULT_CHUNK_SIZE), b""):
                Fileobj.write(chunk)


__all__ = [
    "DEFAULT_BUFFER_SIZE",
    "DEFAULT_PART_SIZE",
    "GCM_MAX_CONTENT_LENGTH",
    "EncryptingS3Client",
]
