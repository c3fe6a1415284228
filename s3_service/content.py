"""Object representation: what a write stores from its headers, what a read returns, ranges
and conditional requests."""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from s3_service import errors
from s3_service.records import ContentAttributes, ObjectRecord
from s3_service.wire import S3Request, http_date, quote_etag

#: Representation headers S3 stores with an object and returns on GET/HEAD.
STORED_HEADERS = (
    "Cache-Control",
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Expires",
    "x-amz-website-redirect-location",
)
STORAGE_CLASSES = frozenset(
    {
        "STANDARD",
        "REDUCED_REDUNDANCY",
        "STANDARD_IA",
        "ONEZONE_IA",
        "INTELLIGENT_TIERING",
        "GLACIER",
        "DEEP_ARCHIVE",
        "OUTPOSTS",
        "GLACIER_IR",
        "SNOW",
        "EXPRESS_ONEZONE",
    }
)
METADATA_PREFIX = "x-amz-meta-"
#: S3's limit on user metadata (names and values, UTF-8 bytes).
MAX_METADATA_BYTES = 2048
#: ``response-*`` query parameters that override headers of a GET (presigned URLs use them).
RESPONSE_OVERRIDES = {
    "response-content-type": "Content-Type",
    "response-content-language": "Content-Language",
    "response-expires": "Expires",
    "response-cache-control": "Cache-Control",
    "response-content-disposition": "Content-Disposition",
    "response-content-encoding": "Content-Encoding",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def attributes_from(request: S3Request) -> ContentAttributes:
    """Content type, stored headers, user metadata and storage class of a write.

    Raises ``MetadataTooLarge`` and ``InvalidStorageClass``.
    """
    headers: dict[str, str] = {}
    for name in STORED_HEADERS:
        value = request.header(name)
        if value is None:
            continue
        if name == "Content-Encoding":
            # aws-chunked describes the upload framing, not the object (S3 drops it too).
            kept = [v.strip() for v in value.split(",") if v.strip().lower() != "aws-chunked"]
            if not kept:
                continue
            value = ",".join(kept)
        headers[name] = value
    metadata: dict[str, str] = {}
    total = 0
    for name, value in request.headers.items():
        lowered = name.lower()
        if lowered.startswith(METADATA_PREFIX):
            short = lowered[len(METADATA_PREFIX) :]
            metadata[short] = value
            total += len(short.encode()) + len(value.encode())
    if total > MAX_METADATA_BYTES:
        raise errors.metadata_too_large()
    storage_class = request.header("x-amz-storage-class") or "STANDARD"
    if storage_class not in STORAGE_CLASSES:
        raise errors.S3Error(
            400, "InvalidStorageClass", "The storage class you specified is not valid"
        )
    return ContentAttributes(
        content_type=request.header("Content-Type") or "binary/octet-stream",
        headers=headers,
        metadata=metadata,
        storage_class=storage_class,
    )


def object_headers(record: ObjectRecord) -> dict[str, str]:
    """Representation headers of a GET/HEAD (encryption headers are added separately)."""
    headers = {
        "Content-Type": record.attributes.content_type,
        "ETag": quote_etag(record.etag),
        "Last-Modified": http_date(record.last_modified),
        "Accept-Ranges": "bytes",
    }
    headers.update(record.attributes.headers)
    for name, value in record.attributes.metadata.items():
        headers[METADATA_PREFIX + name] = value
    if record.attributes.storage_class != "STANDARD":
        headers["x-amz-storage-class"] = record.attributes.storage_class
    return headers


def apply_overrides(headers: dict[str, str], request: S3Request) -> None:
    """Apply ``response-*`` query overrides to a GET's headers."""
    for parameter, header in RESPONSE_OVERRIDES.items():
        value = request.query.get(parameter)
        if value is not None:
            headers[header] = value


@dataclass(frozen=True)
class ByteRange:
    start: int
    end: int  # inclusive

    @property
    def length(self) -> int:
        return self.end - self.start + 1


def parse_range(value: str | None, size: int) -> ByteRange | None:
    """The single byte range a ``Range`` header asks for, or None for the whole object.

    As S3: syntax it does not support (several ranges, other units, ``first > last``) is
    ignored and the whole object is returned. Raises ``InvalidRange`` (416) for a range that
    starts past the end or an empty suffix.
    """
    if value is None:
        return None
    match = _RANGE.match(value.strip())
    if match is None:
        return None
    first, last = match.group(1), match.group(2)
    if not first and not last:
        return None
    if not first:
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise errors.invalid_range(value, size)
        return ByteRange(max(size - suffix, 0), size - 1)
    start = int(first)
    end = int(last) if last else size - 1
    if last and end < start:
        return None
    if start >= size:
        raise errors.invalid_range(value, size)
    return ByteRange(start, min(end, size - 1))


def _etag_matches(header: str, etag: str) -> bool:
    candidates = [item.strip() for item in header.split(",")]
    return "*" in candidates or any(c.strip('"') == etag for c in candidates)


def _date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def evaluate_conditions(request: S3Request, record: ObjectRecord, *, prefix: str = "") -> bool:
    """Apply ``If-Match``, ``If-None-Match``, ``If-Modified-Since`` and
    ``If-Unmodified-Since`` (with ``prefix`` ``x-amz-copy-source-`` for a copy's source).

    Returns False when the answer is 304 Not Modified. Raises ``PreconditionFailed`` (412).
    S3's precedence: a true If-Match overrides a false If-Unmodified-Since, and a false
    If-None-Match overrides a true If-Modified-Since.
    """
    modified = int(record.last_modified)
    if_match = request.header(prefix + "If-Match")
    if_none_match = request.header(prefix + "If-None-Match")
    if_modified = request.header(prefix + "If-Modified-Since")
    if_unmodified = request.header(prefix + "If-Unmodified-Since")
    if if_match is not None:
        if not _etag_matches(if_match, record.etag):
            raise errors.precondition_failed("If-Match")
    elif if_unmodified is not None:
        limit = _date(if_unmodified)
        if limit is not None and modified > limit:
            raise errors.precondition_failed("If-Unmodified-Since")
    if if_none_match is not None:
        if _etag_matches(if_none_match, record.etag):
            if prefix:
                raise errors.precondition_failed("x-amz-copy-source-If-None-Match")
            return False
    elif if_modified is not None:
        since = _date(if_modified)
        if since is not None and modified <= since:
            if prefix:
                raise errors.precondition_failed("x-amz-copy-source-If-Modified-Since")
            return False
    return True
