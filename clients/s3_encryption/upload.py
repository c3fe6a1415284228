"""The writing half of :class:`~clients.s3_encryption.client.EncryptingS3Client`: encrypt and
store an object (one PUT, or a multipart upload through one GCM stream) with its envelope in
object metadata or an instruction file."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import IO, Any

from clients.s3_encryption.content import (
    ContentEncryptor,
    check_content_length,
    start_encryption,
)
from clients.s3_encryption.formats import ContentAlgorithm, FormatVersion, MetadataStorage
from clients.s3_encryption.keyrings import Keyring
from clients.s3_encryption.metadata import (
    DEFAULT_INSTRUCTION_FILE_SUFFIX,
    ENVELOPE_KEYS,
    INSTRUCTION_FILE_MARKER,
    INSTRUCTION_FILE_OBJECT_METADATA,
    Envelope,
    encode_envelope,
    split_for_instruction_file,
)
from clients.s3_encryption.transfer import (
    PER_REQUEST_ARGS,
    ProgressCallback,
    per_request_args,
    read_part,
    remaining_length,
)

DEFAULT_PART_SIZE = 8 * 1024 * 1024
MAX_PARTS = 10_000

# Integrity values computed by the caller describe the plaintext, but S3 receives ciphertext.
REJECTED_PUT_ARGS = frozenset(
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


class ObjectWriter:
    """Encrypting writes; the settings are :class:`EncryptingS3Client`'s."""

    s3_client: Any
    keyring: Keyring
    format_version: FormatVersion
    metadata_storage: MetadataStorage
    part_size: int

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
            if k.startswith(("SSE", "ServerSideEncryption", "BucketKey")) or k in PER_REQUEST_ARGS
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
        rejected = REJECTED_PUT_ARGS & set(request_args)
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
        remaining = remaining_length(Fileobj)
        if remaining is not None:
            check_content_length(remaining)
            parts_needed = remaining // self.part_size + 1
            if parts_needed > MAX_PARTS:
                raise ValueError(
                    f"{remaining} bytes need {parts_needed} parts of {self.part_size} bytes; "
                    f"S3 allows {MAX_PARTS}: raise part_size"
                )
        part_buffer = memoryview(bytearray(self.part_size))
        first = read_part(Fileobj, part_buffer)
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
        per_part = per_request_args(request_args)
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
                chunk = read_part(fileobj, part_buffer)
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
            **per_request_args(kwargs),
        )
        return response
