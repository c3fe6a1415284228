"""Choosing, sealing and opening an object's encryption.

* :func:`requested` reads what a write asks for from the SSE headers (or nothing);
  :func:`effective` falls back to the bucket's default, as S3 does.
* :func:`check_read` validates a read's SSE headers against the stored envelope.
* :class:`KeyService` turns a choice into a stored :class:`Envelope` plus the data key, and
  an envelope back into the data key (calling the KMS for SSE-KMS).
* :func:`response_headers` is what S3 echoes about an object's encryption.
"""

from __future__ import annotations

from dataclasses import dataclass

from s3_service import errors, sse_c, sse_kms
from s3_service.envelope import SSE_C, SSE_KMS, SSE_S3, Envelope
from s3_service.records import BucketRecord
from s3_service.sse_c import CustomerKey
from s3_service.sse_s3 import DataKeyUnwrapError, SseS3Keys
from s3_service.wire import S3Request

SSE_HEADER = "x-amz-server-side-encryption"
DSSE = "aws:kms:dsse"


@dataclass(frozen=True)
class WriteEncryption:
    """What a write will use: the mode and, per mode, its parameters."""

    mode: str
    kms_key_id: str | None = None
    user_context: dict[str, str] | None = None
    bucket_key: bool | None = None
    customer: CustomerKey | None = None


def requested(request: S3Request, *, allow_http: bool) -> WriteEncryption | None:
    """The encryption the request's headers ask for, or None if they name none.

    Raises S3's errors (docs/aws-behaviours.md, "S3 endpoint"): SSE-C problems, an unknown
    method, KMS headers without ``aws:kms``, a malformed context, DSSE (not implemented).
    """
    method = request.header(SSE_HEADER)
    customer = sse_c.parse(
        request.headers, secure=request.secure, allow_http=allow_http, other_method=method
    )
    if customer is not None:
        return WriteEncryption(SSE_C, customer=customer)
    key_id = request.header(sse_kms.KEY_ID_HEADER)
    context = request.header(sse_kms.CONTEXT_HEADER)
    bucket_key = _bucket_key_flag(request.header(sse_kms.BUCKET_KEY_HEADER))
    if method is None or method == SSE_S3:
        if key_id is not None:
            raise errors.sse_kms_header_without_kms(sse_kms.KEY_ID_HEADER, key_id)
        if context is not None:
            raise errors.sse_kms_header_without_kms(sse_kms.CONTEXT_HEADER, context)
        return None if method is None else WriteEncryption(SSE_S3)
    if method == SSE_KMS:
        return WriteEncryption(
            SSE_KMS,
            kms_key_id=key_id or None,
            user_context=sse_kms.parse_context_header(context) if context is not None else None,
            bucket_key=bucket_key,
        )
    if method == DSSE:
        raise errors.not_implemented("DSSE-KMS (aws:kms:dsse)")
    raise errors.sse_unknown_method(method)


def _bucket_key_flag(value: str | None) -> bool | None:
    if value is None:
        return None
    lowered = value.strip().lower()
    if lowered not in ("true", "false"):
        raise errors.invalid_argument(
            "The value of the bucket key header must be true or false",
            sse_kms.BUCKET_KEY_HEADER,
            value,
        )
    return lowered == "true"


def effective(
    wanted: WriteEncryption | None, bucket: BucketRecord, request: S3Request
) -> WriteEncryption:
    """``wanted``, or the bucket's default encryption when the request named none.

    An object-level bucket-key header wins over the bucket's setting. Raises
    ``AccessDenied`` for SSE-C on a bucket that blocks it.
    """
    default = bucket.effective_encryption
    if wanted is not None and wanted.mode == SSE_C:
        if default.blocked_sse_c:
            raise errors.sse_c_blocked(bucket.name)
        return wanted
    header_flag = _bucket_key_flag(request.header(sse_kms.BUCKET_KEY_HEADER))
    bucket_flag = default.bucket_key if default.algorithm == SSE_KMS else False
    if wanted is not None and wanted.mode == SSE_KMS:
        chosen = wanted.bucket_key if wanted.bucket_key is not None else bucket_flag
        return WriteEncryption(SSE_KMS, wanted.kms_key_id, wanted.user_context, chosen)
    if wanted is None and default.algorithm == SSE_KMS:
        chosen = header_flag if header_flag is not None else bucket_flag
        return WriteEncryption(SSE_KMS, default.kms_key_id, None, chosen)
    return WriteEncryption(SSE_S3)


def read_headers(
    request: S3Request, *, allow_http: bool, copy_source: bool = False
) -> CustomerKey | None:
    """The SSE-C key of a read (or of a copy's source), validated before the object is even
    looked up, as S3 does: plain HTTP and malformed headers fail whether or not it exists.

    Raises ``InvalidArgument`` for ``x-amz-server-side-encryption`` on a GET/HEAD and the
    SSE-C header errors.
    """
    if not copy_source and request.header(SSE_HEADER) is not None:
        raise errors.sse_not_supported_on_read()
    prefix = sse_c.COPY_SOURCE_PREFIX if copy_source else sse_c.PREFIX
    return sse_c.parse(request.headers, prefix, secure=request.secure, allow_http=allow_http)


def check_read(envelope: Envelope, customer: CustomerKey | None) -> CustomerKey | None:
    """Match a read's SSE-C key (from :func:`read_headers`) against the object's mode.

    Returns the customer key for an SSE-C object. Raises 400 ``InvalidRequest`` without a
    key, 400 ``InvalidRequest`` for SSE-C headers on an object that is not SSE-C (the wrong
    key is found by :meth:`KeyService.open` / :meth:`KeyService.customer_matches`).
    """
    if envelope.mode != SSE_C:
        if customer is not None:
            raise errors.sse_c_not_applicable()
        return None
    if customer is None:
        raise errors.sse_c_key_required()
    return customer


class KeyService:
    """Data keys for objects: SSE-S3 under the master key, SSE-KMS from the KMS, SSE-C from
    the request. It checks SSE-C keys against stored HMACs and never stores a plaintext key.
    """

    def __init__(self, sse_s3_keys: SseS3Keys, kms: sse_kms.KmsGateway) -> None:
        self._sse_s3 = sse_s3_keys
        self._kms = kms

    def seal(
        self,
        wanted: WriteEncryption,
        bucket: BucketRecord,
        key: str,
        access_key_id: str | None,
        envelope_id: str,
    ) -> tuple[Envelope, bytes]:
        """A new envelope for an object at ``bucket``/``key`` and its plaintext data key.

        Raises ``KMS.*`` errors (400) and ``InternalError`` when the KMS is unreachable.
        """
        if wanted.mode == SSE_S3:
            data_key, wrapped = self._sse_s3.new_data_key(envelope_id)
            return Envelope(SSE_S3, envelope_id, wrapped_key=wrapped), data_key
        if wanted.mode == SSE_KMS:
            bucket_key = bool(wanted.bucket_key)
            arn = (
                sse_kms.bucket_arn(bucket.name)
                if bucket_key
                else sse_kms.object_arn(bucket.name, key)
            )
            context = sse_kms.kms_context(wanted.user_context, arn)
            generated = self._kms.generate_data_key(
                wanted.kms_key_id, context, sse_kms.Caller(access_key_id, bucket.region)
            )
            envelope = Envelope(
                SSE_KMS,
                envelope_id,
                kms_key_arn=generated.key_arn,
                kms_ciphertext=generated.ciphertext,
                kms_context=context,
                bucket_key=bucket_key,
            )
            return envelope, generated.plaintext
        if wanted.customer is None:
            raise ValueError("SSE-C without a customer key")
        salt, mac = sse_c.fingerprint(wanted.customer.key, self._sse_s3.hmac_secret)
        return Envelope(
            SSE_C, envelope_id, customer_salt=salt, customer_hmac=mac
        ), wanted.customer.key

    def open(
        self,
        envelope: Envelope,
        customer: CustomerKey | None,
        bucket: BucketRecord,
        access_key_id: str | None,
    ) -> bytes:
        """The data key of ``envelope``.

        Raises 403 ``AccessDenied`` for a wrong SSE-C key (checked against the stored HMAC in
        constant time), ``KMS.*`` errors from ``Decrypt``, ``InternalError`` for a stored key
        that no longer unwraps.
        """
        if envelope.mode == SSE_S3:
            try:
                return self._sse_s3.unwrap(envelope.wrapped_key, envelope.envelope_id)
            except DataKeyUnwrapError:
                raise errors.S3Error(
                    500, "InternalError", "The object's stored data key failed authentication."
                ) from None
        if envelope.mode == SSE_KMS:
            return self._kms.decrypt(
                envelope.kms_ciphertext,
                envelope.kms_context,
                envelope.kms_key_arn,
                sse_kms.Caller(access_key_id, bucket.region),
            )
        if customer is None:
            raise errors.sse_c_key_required()
        if not self.customer_matches(envelope, customer):
            raise errors.sse_c_wrong_key()
        return customer.key

    def customer_matches(self, envelope: Envelope, customer: CustomerKey) -> bool:
        """Whether ``customer`` is the SSE-C key ``envelope`` was sealed with."""
        return sse_c.matches(
            customer.key, envelope.customer_salt, envelope.customer_hmac, self._sse_s3.hmac_secret
        )


def response_headers(
    envelope: Envelope, customer: CustomerKey | None, *, with_context: bool = False
) -> dict[str, str]:
    """The encryption headers S3 returns for an object (the context only on writes)."""
    if envelope.mode == SSE_S3:
        return {SSE_HEADER: SSE_S3}
    if envelope.mode == SSE_KMS:
        headers = {SSE_HEADER: SSE_KMS, sse_kms.KEY_ID_HEADER: envelope.kms_key_arn}
        if envelope.bucket_key:
            headers[sse_kms.BUCKET_KEY_HEADER] = "true"
        if with_context:
            headers[sse_kms.CONTEXT_HEADER] = sse_kms.encode_context(envelope.kms_context)
        return headers
    headers = {sse_c.PREFIX + "algorithm": sse_c.ALGORITHM}
    if customer is not None:
        headers[sse_c.PREFIX + "key-MD5"] = customer.key_md5
    return headers
