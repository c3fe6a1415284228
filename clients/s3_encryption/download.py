"""The reading half of :class:`~clients.s3_encryption.client.EncryptingS3Client`: fetch an
object and its envelope, unwrap the data key, and decrypt: whole objects authenticated before
release (or streamed with delayed authentication), ranged reads through AES-CTR."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Mapping
from typing import IO, Any, BinaryIO

from clients.s3_encryption.body import DEFAULT_CHUNK_SIZE, PlaintextBody
from clients.s3_encryption.content import (
    CbcContentDecryptor,
    ContentDecryptor,
    CtrRangeDecryptor,
    crypto_range,
    ctr_key_and_iv,
    start_decryption,
)
from clients.s3_encryption.errors import (
    InvalidRangeError,
    LegacyFormatError,
    RangedGetNotAllowedError,
    S3EncryptionError,
    TruncatedObjectError,
    UnknownFormatError,
)
from clients.s3_encryption.formats import GCM_TAG_LENGTH, ContentAlgorithm
from clients.s3_encryption.keyrings import Keyring, aws_error_code
from clients.s3_encryption.metadata import (
    MAX_INSTRUCTION_FILE_SIZE,
    Envelope,
    decode_envelope,
    parse_instruction_file,
)
from clients.s3_encryption.transfer import (
    ProgressCallback,
    content_range,
    decrypt_chunks,
    decrypt_ctr_slice,
    parse_range,
    per_request_args,
)

DEFAULT_BUFFER_SIZE = 64 * 1024 * 1024


class ObjectReader:
    """Decrypting reads; the settings are :class:`EncryptingS3Client`'s."""

    s3_client: Any
    keyring: Keyring
    allow_legacy_formats: bool
    allow_unauthenticated_ranged_get: bool
    delayed_authentication: bool
    buffer_size: int
    instruction_file_suffix: str

    def _load_envelope(
        self,
        metadata: Mapping[str, str],
        bucket: str,
        key: str,
        suffix: str | None,
        request_args: Mapping[str, Any],
    ) -> Envelope:
        instruction_key = key + (suffix or self.instruction_file_suffix)
        per_request = per_request_args(request_args)

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
            for plaintext in decrypt_chunks(body, decryptor, callback):
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
            response["Body"] = PlaintextBody(decrypt_chunks(body, decryptor), body.close, streamed)
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
        first, last = parse_range(range_spec)
        per_request = per_request_args(request_args)
        if first is None:
            assert last is not None  # parse_range guarantees one of them
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
            start, total = content_range(response)
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
            decrypt_ctr_slice(body, decryptor, first - start, wanted), body.close, wanted
        )
        response["ContentLength"] = wanted
        response["ContentRange"] = f"bytes {first}-{end}/{plaintext_length}"
        return response

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
                for plaintext in decrypt_chunks(body, decryptor, Callback):
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
                for plaintext in decrypt_chunks(body, decryptor, Callback):
                    Fileobj.write(plaintext)
            finally:
                body.close()
            return
        spool, _ = self._spool(body, decryptor, Callback)
        with spool:
            for chunk in iter(lambda: spool.read(DEFAULT_CHUNK_SIZE), b""):
                Fileobj.write(chunk)
