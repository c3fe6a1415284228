"""Object operations: PutObject, GetObject (with Range), HeadObject, DeleteObject,
DeleteObjects, CopyObject."""

from __future__ import annotations

import secrets
import time
from urllib.parse import unquote

from werkzeug.wrappers import Response

from s3_service import encryption, errors, xmlcodec
from s3_service.body import RequestBody
from s3_service.content import (
    apply_overrides,
    attributes_from,
    evaluate_conditions,
    object_headers,
    parse_range,
)
from s3_service.datapath import SegmentStream, WrittenSegment, plaintext_pieces, write_segment
from s3_service.envelope import SSE_S3, Envelope
from s3_service.records import ContentAttributes, ObjectRecord
from s3_service.services import S3Services
from s3_service.sse_c import CustomerKey
from s3_service.wire import S3Request, empty_response, quote_etag, stream_response, xml_response

#: S3's limit for a single PUT or copy.
MAX_OBJECT_SIZE = 5 * 1024**3


def new_version_id() -> str:
    return secrets.token_urlsafe(24)


def etag_for(envelope_mode: str, written: WrittenSegment) -> str:
    """S3's ETag of a single-part object: the MD5 of the data for SSE-S3, something else for
    SSE-KMS and SSE-C (here the MD5 of the stored ciphertext), as AWS documents."""
    digest = written.plaintext_md5 if envelope_mode == SSE_S3 else written.ciphertext_md5
    return digest.hex()


def _single_segment_record(
    bucket: str,
    key: str,
    version_id: str,
    attributes: ContentAttributes,
    envelope: Envelope,
    written: WrittenSegment,
    *,
    checksum: dict[str, str] | None = None,
) -> ObjectRecord:
    """The record of an object written whole as one segment (PutObject, CopyObject), modified
    now; ``checksum`` is the verified ``x-amz-checksum-*`` of a PutObject."""
    return ObjectRecord(
        bucket=bucket,
        key=key,
        version_id=version_id,
        size=written.segment.size,
        etag=etag_for(envelope.mode, written),
        last_modified=time.time(),
        attributes=attributes,
        envelope=envelope,
        segments=(written.segment,),
        checksum={} if checksum is None else checksum,
    )


def put_object(services: S3Services, request: S3Request) -> Response:
    """PutObject: encrypt the body as it arrives, commit atomically, answer the ETag."""
    bucket_name, key = request.bucket_and_key()
    # Header checks first: SSE-C over HTTP fails the same whether or not the bucket exists.
    wanted_header = encryption.requested(request, allow_http=services.allow_sse_c_over_http)
    bucket = services.store.get_bucket(bucket_name)
    wanted = encryption.effective(wanted_header, bucket, request)
    attributes = attributes_from(request)
    body = RequestBody(
        request.stream, request.headers, max_size=MAX_OBJECT_SIZE, chunk_check=request.chunk_check
    )
    if_none_match = (request.header("If-None-Match") or "").strip() == "*"
    version_id = new_version_id()
    envelope, data_key = services.keys.seal(
        wanted, bucket, key, request.caller.access_key_id, version_id
    )

    def publish(written: WrittenSegment) -> tuple[ObjectRecord, list[str]]:
        record = _single_segment_record(
            bucket_name, key, version_id, attributes, envelope, written, checksum=body.checksum
        )
        return record, services.store.put_object(record, if_none_match=if_none_match)

    record, replaced = write_segment(services.blobs, data_key, body.pieces(), body.verify, publish)
    services.blobs.delete(replaced)
    headers = {"ETag": quote_etag(record.etag)}
    headers.update(encryption.response_headers(envelope, wanted.customer, with_context=True))
    for algorithm, value in record.checksum.items():
        headers[f"x-amz-checksum-{algorithm}"] = value
    return empty_response(request, headers=headers)


def _read_object(
    services: S3Services, request: S3Request
) -> tuple[ObjectRecord, CustomerKey | None]:
    bucket_name, key = request.bucket_and_key()
    presented = encryption.read_headers(request, allow_http=services.allow_sse_c_over_http)
    record = services.store.get_object(bucket_name, key)
    customer = encryption.check_read(record.envelope, presented)
    if customer is not None and not services.keys.customer_matches(record.envelope, customer):
        raise errors.sse_c_wrong_key()
    if "versionId" in request.query and request.query["versionId"] not in ("null", ""):
        raise errors.no_such_version(key, request.query["versionId"])
    return record, customer


def _stored_checksum(request: S3Request, record: ObjectRecord) -> dict[str, str]:
    """The whole-object checksum verified at upload, when the client asks for it
    (``x-amz-checksum-mode: ENABLED``; botocore then checks the body it receives)."""
    if (request.header("x-amz-checksum-mode") or "").upper() != "ENABLED":
        return {}
    return {f"x-amz-checksum-{name}": value for name, value in record.checksum.items()}


def _not_modified(request: S3Request, record: ObjectRecord) -> Response:
    headers = {
        "ETag": quote_etag(record.etag),
        "Last-Modified": object_headers(record)["Last-Modified"],
    }
    return empty_response(request, status=304, headers=headers)


def get_object(services: S3Services, request: S3Request) -> Response:
    """GetObject: headers first (every check, and the KMS ``Decrypt``, happen before the
    status is sent), then the plaintext streamed chunk by chunk."""
    record, customer = _read_object(services, request)
    if not evaluate_conditions(request, record):
        return _not_modified(request, record)
    byte_range = parse_range(request.header("Range"), record.size)
    bucket = services.store.get_bucket(record.bucket)
    data_key = services.keys.open(record.envelope, customer, bucket, request.caller.access_key_id)
    headers = object_headers(record)
    headers.update(encryption.response_headers(record.envelope, customer))
    apply_overrides(headers, request)
    status = 200
    start, end = 0, record.size - 1
    if byte_range is not None:
        status = 206
        start, end = byte_range.start, byte_range.end
        headers["Content-Range"] = f"bytes {start}-{end}/{record.size}"
    headers["Content-Length"] = str(max(end - start + 1, 0))
    if byte_range is None:
        headers.update(_stored_checksum(request, record))
    if record.size == 0:
        return stream_response(request, [], status=status, headers=headers)
    body = SegmentStream(services.blobs, record.segments, data_key, start, end)
    return stream_response(request, body, status=status, headers=headers)


def head_object(services: S3Services, request: S3Request) -> Response:
    """HeadObject: GetObject's headers without the body (and without calling the KMS)."""
    record, customer = _read_object(services, request)
    if not evaluate_conditions(request, record):
        return _not_modified(request, record)
    byte_range = parse_range(request.header("Range"), record.size)
    headers = object_headers(record)
    headers.update(encryption.response_headers(record.envelope, customer))
    status = 200
    length = record.size
    if byte_range is None:
        headers.update(_stored_checksum(request, record))
    if byte_range is not None:
        status = 206
        length = byte_range.length
        headers["Content-Range"] = f"bytes {byte_range.start}-{byte_range.end}/{record.size}"
    headers["Content-Length"] = str(length)
    return stream_response(request, [], status=status, headers=headers)


def delete_object(services: S3Services, request: S3Request) -> Response:
    """DeleteObject: 204 whether or not the key existed, as S3 answers."""
    bucket_name, key = request.bucket_and_key()
    services.blobs.delete(services.store.delete_object(bucket_name, key))
    return empty_response(request, status=204)


def delete_objects(services: S3Services, request: S3Request) -> Response:
    """DeleteObjects (``POST ?delete``): up to 1000 keys, per-key results."""
    if request.bucket is None:
        raise errors.invalid_request("A bucket is required.")
    services.store.get_bucket(request.bucket)
    body = RequestBody(
        request.stream,
        request.headers,
        max_size=xmlcodec.MAX_REQUEST_XML,
        chunk_check=request.chunk_check,
    )
    document = xmlcodec.parse(body.read_all(xmlcodec.MAX_REQUEST_XML), "Delete")
    quiet = (xmlcodec.text(document, "Quiet") or "").lower() == "true"
    keys: list[str] = []
    for item in document.findall("Object"):
        key = xmlcodec.text(item, "Key")
        if not key:
            raise errors.malformed_xml()
        keys.append(key)
    if not keys or len(keys) > 1000:
        raise errors.malformed_xml()
    results: list[xmlcodec.Child] = []
    for key in keys:
        services.blobs.delete(services.store.delete_object(request.bucket, key))
        if not quiet:
            results.append(("Deleted", [("Key", key)]))
    return xml_response(request, xmlcodec.document("DeleteResult", results))


def parse_copy_source(value: str) -> tuple[str, str, str | None]:
    """``(bucket, key, version id)`` from ``x-amz-copy-source`` (``/bucket/key?versionId=``,
    percent-encoded). Raises ``InvalidArgument``."""
    path, _, query = value.partition("?")
    bucket, _, key = unquote(path).lstrip("/").partition("/")
    if not bucket or not key:
        raise errors.invalid_argument(
            "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            "x-amz-copy-source",
            value,
        )
    version = None
    if query.startswith("versionId="):
        version = unquote(query[len("versionId=") :])
    return bucket, key, version


def open_copy_source(
    services: S3Services, request: S3Request
) -> tuple[ObjectRecord, bytes, CustomerKey | None]:
    """The copy source's record and data key, after its conditions and its SSE-C key
    (``x-amz-copy-source-server-side-encryption-customer-*``) were checked.

    Raises ``NoSuchKey``/``NoSuchBucket``, ``PreconditionFailed``, the SSE-C errors and the
    ``KMS.*`` errors of ``Decrypt``.
    """
    source_value = request.header("x-amz-copy-source") or ""
    source_bucket, source_key, version = parse_copy_source(source_value)
    presented = encryption.read_headers(
        request, allow_http=services.allow_sse_c_over_http, copy_source=True
    )
    record = services.store.get_object(source_bucket, source_key)
    if version not in (None, "null"):
        raise errors.no_such_version(source_key, version or "")
    customer = encryption.check_read(record.envelope, presented)
    evaluate_conditions(request, record, prefix="x-amz-copy-source-")
    bucket = services.store.get_bucket(source_bucket)
    data_key = services.keys.open(record.envelope, customer, bucket, request.caller.access_key_id)
    return record, data_key, customer


def _copy_attributes(request: S3Request, source: ObjectRecord) -> ContentAttributes:
    directive = (request.header("x-amz-metadata-directive") or "COPY").upper()
    if directive not in ("COPY", "REPLACE"):
        raise errors.invalid_argument(
            "Unknown metadata directive.", "x-amz-metadata-directive", directive
        )
    if directive == "REPLACE":
        return attributes_from(request)
    copied = source.attributes
    storage_class = request.header("x-amz-storage-class") or copied.storage_class
    return ContentAttributes(copied.content_type, copied.headers, copied.metadata, storage_class)


def copy_object(services: S3Services, request: S3Request) -> Response:
    """CopyObject: decrypt the source and re-encrypt it as the destination asks (or as the
    destination bucket's default says), streaming, so SSE-C → SSE-KMS and every other pair
    work. The source's encryption context is not carried over, as on AWS."""
    bucket_name, key = request.bucket_and_key()
    wanted_header = encryption.requested(request, allow_http=services.allow_sse_c_over_http)
    bucket = services.store.get_bucket(bucket_name)
    source, source_key, _ = open_copy_source(services, request)
    if source.size > MAX_OBJECT_SIZE:
        raise errors.invalid_request(
            "The specified copy source is larger than the maximum allowable size for a copy "
            "source: 5368709120"
        )
    same_object = (source.bucket, source.key) == (bucket_name, key)
    changes = (
        (request.header("x-amz-metadata-directive") or "COPY").upper() == "REPLACE"
        or wanted_header is not None
        or request.header("x-amz-storage-class") is not None
    )
    if same_object and not changes:
        raise errors.illegal_copy_to_itself()
    wanted = encryption.effective(wanted_header, bucket, request)
    attributes = _copy_attributes(request, source)
    version_id = new_version_id()
    envelope, data_key = services.keys.seal(
        wanted, bucket, key, request.caller.access_key_id, version_id
    )
    # Opened before anything is written: the source files stay readable even if the source
    # is overwritten while we copy (an open file survives its unlink).
    pieces = plaintext_pieces(services.blobs, source.segments, source_key, source.size)

    def publish(written: WrittenSegment) -> tuple[ObjectRecord, list[str]]:
        record = _single_segment_record(bucket_name, key, version_id, attributes, envelope, written)
        return record, services.store.put_object(record)

    try:
        record, replaced = write_segment(
            services.blobs, data_key, pieces, _nothing_to_verify, publish
        )
    finally:
        pieces.close()
    services.blobs.delete(replaced)
    result = xmlcodec.document(
        "CopyObjectResult",
        [
            ("ETag", quote_etag(record.etag)),
            ("LastModified", xmlcodec.timestamp(record.last_modified)),
        ],
    )
    headers = encryption.response_headers(envelope, wanted.customer, with_context=True)
    return xml_response(request, result, headers=headers)


def _nothing_to_verify() -> None:
    """A copy's bytes come from our own authenticated segments: there is no client digest."""
