"""Multipart uploads: CreateMultipartUpload, UploadPart (and UploadPartCopy),
CompleteMultipartUpload, AbortMultipartUpload, ListParts, ListMultipartUploads.

The data key is chosen once, at CreateMultipartUpload (``GenerateDataKey`` for SSE-KMS), and
stored in the upload's envelope; each UploadPart opens it again (``Decrypt`` for SSE-KMS, the
same key for SSE-C) and writes the part as its own segment. Completing an upload writes no
data: the object simply becomes the list of its parts' segments.
"""

from __future__ import annotations

import hashlib
import secrets
import time

from werkzeug.wrappers import Response

from s3_service import encryption, errors, sse_c, xmlcodec
from s3_service.body import RequestBody
from s3_service.content import attributes_from, parse_range
from s3_service.datapath import SegmentStream, WrittenSegment, write_segment
from s3_service.envelope import SSE_C, SSE_S3
from s3_service.objects import open_copy_source
from s3_service.records import ObjectRecord, PartRecord, UploadRecord
from s3_service.services import S3Services
from s3_service.sse_c import CustomerKey
from s3_service.wire import S3Request, empty_response, quote_etag, xml_response

MIN_PART_SIZE = 5 * 1024 * 1024
MAX_PARTS = 10000
MAX_PART_SIZE = 5 * 1024**3


def create_upload(services: S3Services, request: S3Request) -> Response:
    """CreateMultipartUpload: validate encryption, get the data key, answer the upload id."""
    bucket_name, key = request.bucket_and_key()
    wanted_header = encryption.requested(request, allow_http=services.allow_sse_c_over_http)
    bucket = services.store.get_bucket(bucket_name)
    wanted = encryption.effective(wanted_header, bucket, request)
    attributes = attributes_from(request)
    upload_id = secrets.token_urlsafe(48)
    envelope, _ = services.keys.seal(wanted, bucket, key, request.caller.access_key_id, upload_id)
    services.store.create_upload(
        UploadRecord(
            upload_id=upload_id,
            bucket=bucket_name,
            key=key,
            initiated=time.time(),
            account_id=request.caller.account_id,
            attributes=attributes,
            envelope=envelope,
        )
    )
    result = xmlcodec.document(
        "InitiateMultipartUploadResult",
        [("Bucket", bucket_name), ("Key", key), ("UploadId", upload_id)],
    )
    headers = encryption.response_headers(envelope, wanted.customer, with_context=True)
    return xml_response(request, result, headers=headers)


def _part_number(request: S3Request) -> int:
    value = request.query.get("partNumber", "")
    if not value.isdigit() or not 1 <= int(value) <= MAX_PARTS:
        raise errors.invalid_part_number()
    return int(value)


def _part_customer_key(
    services: S3Services, request: S3Request, upload: UploadRecord
) -> CustomerKey | None:
    """The SSE-C key of an UploadPart, which must repeat the initiating request's."""
    customer = sse_c.parse(
        request.headers, secure=request.secure, allow_http=services.allow_sse_c_over_http
    )
    if upload.envelope.mode != SSE_C:
        if customer is not None:
            raise errors.sse_c_part_mismatch()
        return None
    if customer is None:
        raise errors.sse_c_part_missing()
    if not services.keys.customer_matches(upload.envelope, customer):
        raise errors.sse_c_part_mismatch()
    return customer


def upload_part(services: S3Services, request: S3Request) -> Response:
    """UploadPart, or UploadPartCopy when ``x-amz-copy-source`` is present."""
    bucket_name, key = request.bucket_and_key()
    part_number = _part_number(request)
    upload = services.store.get_upload(bucket_name, key, request.query.get("uploadId", ""))
    customer = _part_customer_key(services, request, upload)
    if request.header("x-amz-copy-source") is not None:
        return _upload_part_copy(services, request, upload, part_number, customer)
    bucket = services.store.get_bucket(bucket_name)
    body = RequestBody(
        request.stream, request.headers, max_size=MAX_PART_SIZE, chunk_check=request.chunk_check
    )
    data_key = services.keys.open(upload.envelope, customer, bucket, request.caller.access_key_id)

    def publish(written: WrittenSegment) -> tuple[PartRecord, list[str]]:
        part = PartRecord(part_number, written.segment, _part_etag(upload, written), time.time())
        return part, services.store.put_part(upload.upload_id, part)

    part, replaced = write_segment(services.blobs, data_key, body.pieces(), body.verify, publish)
    services.blobs.delete(replaced)
    headers = {"ETag": quote_etag(part.etag)}
    headers.update(encryption.response_headers(upload.envelope, customer))
    for algorithm, value in body.checksum.items():
        headers[f"x-amz-checksum-{algorithm}"] = value
    return empty_response(request, headers=headers)


def _part_etag(upload: UploadRecord, written: WrittenSegment) -> str:
    # As for single-part objects: the data's MD5 only for SSE-S3.
    digest = written.plaintext_md5 if upload.envelope.mode == SSE_S3 else written.ciphertext_md5
    return digest.hex()


def _upload_part_copy(
    services: S3Services,
    request: S3Request,
    upload: UploadRecord,
    part_number: int,
    customer: CustomerKey | None,
) -> Response:
    """UploadPartCopy: a byte range (``x-amz-copy-source-range``) of an existing object."""
    source, source_key, _ = open_copy_source(services, request)
    byte_range = parse_range(request.header("x-amz-copy-source-range"), source.size)
    start, end = (byte_range.start, byte_range.end) if byte_range else (0, source.size - 1)
    if end - start + 1 > MAX_PART_SIZE:
        raise errors.invalid_request("The specified copy range is too large.")
    bucket = services.store.get_bucket(upload.bucket)
    data_key = services.keys.open(upload.envelope, customer, bucket, request.caller.access_key_id)
    pieces = SegmentStream(services.blobs, source.segments, source_key, start, end)

    def publish(written: WrittenSegment) -> tuple[PartRecord, list[str]]:
        part = PartRecord(part_number, written.segment, _part_etag(upload, written), time.time())
        return part, services.store.put_part(upload.upload_id, part)

    try:
        part, replaced = write_segment(services.blobs, data_key, pieces, _no_digest, publish)
    finally:
        pieces.close()
    services.blobs.delete(replaced)
    result = xmlcodec.document(
        "CopyPartResult",
        [("ETag", quote_etag(part.etag)), ("LastModified", xmlcodec.timestamp(part.last_modified))],
    )
    return xml_response(
        request, result, headers=encryption.response_headers(upload.envelope, customer)
    )


def _no_digest() -> None:
    """Copied bytes come from authenticated segments: no client digest to check."""


def _requested_parts(request: S3Request) -> list[tuple[int, str]]:
    raw = RequestBody(
        request.stream,
        request.headers,
        max_size=xmlcodec.MAX_REQUEST_XML,
        chunk_check=request.chunk_check,
    )
    document = xmlcodec.parse(raw.read_all(xmlcodec.MAX_REQUEST_XML), "CompleteMultipartUpload")
    parts: list[tuple[int, str]] = []
    for node in document.findall("Part"):
        number = xmlcodec.text(node, "PartNumber") or ""
        etag = xmlcodec.text(node, "ETag")
        if not number.isdigit() or etag is None:
            raise errors.malformed_xml()
        parts.append((int(number), etag.strip().strip('"')))
    if not parts:
        raise errors.invalid_request("You must specify at least one part")
    return parts


def complete_upload(services: S3Services, request: S3Request) -> Response:
    """CompleteMultipartUpload: check the listed parts (order, ETags, 5 MiB minimum but for
    the last) and switch the key to the new object in one transaction."""
    bucket_name, key = request.bucket_and_key()
    upload = services.store.get_upload(bucket_name, key, request.query.get("uploadId", ""))
    customer: CustomerKey | None = None
    if upload.envelope.mode == SSE_C and sse_c.present(request.headers):
        # botocore sends the trio on Complete; when present it must be the right key.
        customer = _part_customer_key(services, request, upload)
    requested = _requested_parts(request)

    def build(stored: dict[int, PartRecord]) -> ObjectRecord:
        previous = 0
        chosen: list[PartRecord] = []
        for number, etag in requested:
            if number <= previous:
                raise errors.invalid_part_order()
            previous = number
            part = stored.get(number)
            if part is None or part.etag != etag:
                raise errors.invalid_part(number, etag)
            chosen.append(part)
        for part in chosen[:-1]:
            if part.segment.size < MIN_PART_SIZE:
                raise errors.entity_too_small(part.segment.size, MIN_PART_SIZE)
        combined = hashlib.md5(usedforsecurity=False)
        for part in chosen:
            combined.update(bytes.fromhex(part.etag))
        size = sum(part.segment.size for part in chosen)
        if size > 5 * 1024**4:
            raise errors.entity_too_large(size, 5 * 1024**4)
        return ObjectRecord(
            bucket=bucket_name,
            key=key,
            version_id=upload.upload_id,
            size=size,
            etag=f"{combined.hexdigest()}-{len(chosen)}",
            last_modified=time.time(),
            attributes=upload.attributes,
            envelope=upload.envelope,
            segments=tuple(part.segment for part in chosen),
        )

    record, unused = services.store.complete_upload(upload, build)
    services.blobs.delete(unused)
    result = xmlcodec.document(
        "CompleteMultipartUploadResult",
        [
            ("Location", f"/{bucket_name}/{key}"),
            ("Bucket", bucket_name),
            ("Key", key),
            ("ETag", quote_etag(record.etag)),
        ],
    )
    headers = encryption.response_headers(upload.envelope, customer)
    return xml_response(request, result, headers=headers)


def abort_upload(services: S3Services, request: S3Request) -> Response:
    bucket_name, key = request.bucket_and_key()
    upload = services.store.get_upload(bucket_name, key, request.query.get("uploadId", ""))
    services.blobs.delete(services.store.abort_upload(upload.upload_id))
    return empty_response(request, status=204)


def list_parts(services: S3Services, request: S3Request) -> Response:
    """ListParts with ``max-parts`` and ``part-number-marker`` paging."""
    bucket_name, key = request.bucket_and_key()
    upload = services.store.get_upload(bucket_name, key, request.query.get("uploadId", ""))
    marker_text = request.query.get("part-number-marker", "0") or "0"
    limit_text = request.query.get("max-parts", "1000") or "1000"
    if not marker_text.isdigit() or not limit_text.isdigit():
        raise errors.invalid_argument("Part number marker and max parts must be integers")
    marker, limit = int(marker_text), min(int(limit_text), 1000)
    parts = services.store.list_parts(upload.upload_id, marker, limit + 1)
    page, truncated = parts[:limit], len(parts) > limit
    children: list[xmlcodec.Child] = [
        ("Bucket", bucket_name),
        ("Key", key),
        ("UploadId", upload.upload_id),
        ("PartNumberMarker", marker),
        ("NextPartNumberMarker", page[-1].part_number if page else marker),
        ("MaxParts", limit),
        ("IsTruncated", truncated),
        ("StorageClass", upload.attributes.storage_class),
    ]
    children.extend(
        (
            "Part",
            [
                ("PartNumber", part.part_number),
                ("LastModified", xmlcodec.timestamp(part.last_modified)),
                ("ETag", quote_etag(part.etag)),
                ("Size", part.segment.size),
            ],
        )
        for part in page
    )
    return xml_response(request, xmlcodec.document("ListPartsResult", children))


def list_uploads(services: S3Services, request: S3Request) -> Response:
    """ListMultipartUploads (``GET /bucket?uploads``), with ``prefix`` and ``max-uploads``."""
    if request.bucket is None:
        raise errors.invalid_request("A bucket is required.")
    bucket = services.store.get_bucket(request.bucket)
    prefix = request.query.get("prefix", "")
    limit_text = request.query.get("max-uploads", "1000") or "1000"
    limit = min(int(limit_text), 1000) if limit_text.isdigit() else 1000
    uploads = services.store.list_uploads(bucket.name, prefix.encode(), limit + 1)
    page, truncated = uploads[:limit], len(uploads) > limit
    children: list[xmlcodec.Child] = [
        ("Bucket", bucket.name),
        ("KeyMarker", ""),
        ("UploadIdMarker", ""),
        ("Prefix", prefix),
        ("MaxUploads", limit),
        ("IsTruncated", truncated),
    ]
    children.extend(
        (
            "Upload",
            [
                ("Key", upload.key),
                ("UploadId", upload.upload_id),
                ("StorageClass", upload.attributes.storage_class),
                ("Initiated", xmlcodec.timestamp(upload.initiated)),
            ],
        )
        for upload in page
    )
    return xml_response(request, xmlcodec.document("ListMultipartUploadsResult", children))
