"""ListObjectsV2 and ListObjects (v1): prefixes, delimiters, paging, URL encoding.

Entries (keys and common prefixes) come in UTF-8 byte order. A page ends after ``max-keys``
entries; the continuation token (or v1 marker) is the last entry returned, and the next page
skips everything up to it, including the keys rolled up into it when it is a common prefix.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from urllib.parse import quote

from werkzeug.wrappers import Response

from s3_service import errors, xmlcodec
from s3_service.buckets import canonical_user_id
from s3_service.records import ListedObject
from s3_service.services import S3Services
from s3_service.store import successor
from s3_service.wire import S3Request, quote_etag, xml_response

MAX_KEYS = 1000
_BATCH = 1000


@dataclass(frozen=True)
class Page:
    objects: list[ListedObject]
    prefixes: list[str]
    truncated: bool
    last_entry: str | None


def _entries(
    services: S3Services, bucket: str, prefix: str, delimiter: str, after: str | None
) -> Iterator[tuple[str, ListedObject | None]]:
    """``(name, object)`` for keys and ``(common prefix, None)`` for roll-ups, in order,
    every entry sorting after ``after``."""
    prefix_bytes = prefix.encode()
    cursor = after.encode() if after is not None else None
    inclusive = False
    while True:
        batch = services.store.list_objects(
            bucket, prefix_bytes, cursor, _BATCH, inclusive=inclusive
        )
        if not batch:
            return
        for item in batch:
            cursor, inclusive = item.key.encode(), False
            position = item.key.find(delimiter, len(prefix)) if delimiter else -1
            if position < 0:
                yield item.key, item
                continue
            common = item.key[: position + len(delimiter)]
            if after is None or common.encode() > after.encode():
                yield common, None
            # Jump past every key under this common prefix instead of reading them all.
            upper = successor(common.encode())
            if upper is None:
                return
            cursor, inclusive = upper, True
            break
        else:
            if len(batch) < _BATCH:
                return


def list_page(
    services: S3Services,
    bucket: str,
    prefix: str,
    delimiter: str,
    after: str | None,
    max_keys: int,
) -> Page:
    objects: list[ListedObject] = []
    prefixes: list[str] = []
    last: str | None = None
    truncated = False
    if max_keys > 0:
        for name, item in _entries(services, bucket, prefix, delimiter, after):
            if len(objects) + len(prefixes) == max_keys:
                truncated = True
                break
            if item is None:
                prefixes.append(name)
            else:
                objects.append(item)
            last = name
    return Page(objects, prefixes, truncated, last)


def _max_keys(request: S3Request) -> int:
    value = request.query.get("max-keys")
    if value is None:
        return MAX_KEYS
    try:
        number = int(value)
    except ValueError:
        raise errors.invalid_argument(
            "Provided max-keys not an integer or within integer range", "max-keys", value
        ) from None
    if number < 0:
        raise errors.invalid_argument(
            "Argument maxKeys must be an integer between 0 and 2147483647", "maxKeys", value
        )
    return min(number, MAX_KEYS)


def _encoder(request: S3Request) -> tuple[str | None, Callable[[str], str]]:
    encoding = request.query.get("encoding-type")
    if encoding is not None and encoding != "url":
        raise errors.invalid_argument(
            "Invalid Encoding Method specified in Request", "encoding-type", encoding
        )

    def encode(value: str) -> str:
        return quote(value, safe="/") if encoding == "url" else value

    return encoding, encode


def _contents(
    item: ListedObject, encode: Callable[[str], str], owner: str | None
) -> tuple[str, list[xmlcodec.Child]]:
    children: list[xmlcodec.Child] = [
        ("Key", encode(item.key)),
        ("LastModified", xmlcodec.timestamp(item.last_modified)),
        ("ETag", quote_etag(item.etag)),
        ("Size", item.size),
        ("StorageClass", item.storage_class),
    ]
    if owner is not None:
        children.append(("Owner", [("ID", owner)]))
    return "Contents", children


def list_objects_v2(services: S3Services, request: S3Request) -> Response:
    """ListObjectsV2 (``GET /bucket?list-type=2``)."""
    assert request.bucket is not None
    bucket = services.store.get_bucket(request.bucket)
    prefix = request.query.get("prefix", "")
    delimiter = request.query.get("delimiter", "")
    max_keys = _max_keys(request)
    encoding, encode = _encoder(request)
    token = request.query.get("continuation-token")
    start_after = request.query.get("start-after")
    after = start_after
    if token is not None:
        after = _decode_token(token)
    page = list_page(services, bucket.name, prefix, delimiter, after, max_keys)
    owner = (
        canonical_user_id(bucket.account_id)
        if request.query.get("fetch-owner", "").lower() == "true"
        else None
    )
    children: list[xmlcodec.Child] = [
        ("Name", bucket.name),
        ("Prefix", encode(prefix)),
        ("KeyCount", len(page.objects) + len(page.prefixes)),
        ("MaxKeys", max_keys),
        ("Delimiter", encode(delimiter) if delimiter else None),
        ("EncodingType", encoding),
        ("IsTruncated", page.truncated),
        ("ContinuationToken", token),
        (
            "NextContinuationToken",
            _encode_token(page.last_entry) if page.truncated and page.last_entry else None,
        ),
        ("StartAfter", encode(start_after) if start_after is not None else None),
    ]
    children.extend(_contents(item, encode, owner) for item in page.objects)
    children.extend(("CommonPrefixes", [("Prefix", encode(p))]) for p in page.prefixes)
    return xml_response(request, xmlcodec.document("ListBucketResult", children))


def list_objects_v1(services: S3Services, request: S3Request) -> Response:
    """ListObjects (``GET /bucket``), with ``marker``/``NextMarker``."""
    assert request.bucket is not None
    bucket = services.store.get_bucket(request.bucket)
    prefix = request.query.get("prefix", "")
    delimiter = request.query.get("delimiter", "")
    marker = request.query.get("marker", "")
    max_keys = _max_keys(request)
    encoding, encode = _encoder(request)
    page = list_page(services, bucket.name, prefix, delimiter, marker or None, max_keys)
    owner = canonical_user_id(bucket.account_id)
    children: list[xmlcodec.Child] = [
        ("Name", bucket.name),
        ("Prefix", encode(prefix)),
        ("Marker", encode(marker)),
        ("MaxKeys", max_keys),
        ("Delimiter", encode(delimiter) if delimiter else None),
        ("EncodingType", encoding),
        ("IsTruncated", page.truncated),
        # As AWS: NextMarker only with a delimiter; clients use the last key otherwise.
        (
            "NextMarker",
            encode(page.last_entry) if page.truncated and delimiter and page.last_entry else None,
        ),
    ]
    children.extend(_contents(item, encode, owner) for item in page.objects)
    children.extend(("CommonPrefixes", [("Prefix", encode(p))]) for p in page.prefixes)
    return xml_response(request, xmlcodec.document("ListBucketResult", children))


def _encode_token(entry: str) -> str:
    return base64.urlsafe_b64encode(entry.encode()).decode("ascii")


def _decode_token(token: str) -> str:
    try:
        return base64.urlsafe_b64decode(token.encode("ascii")).decode()
    except (binascii.Error, ValueError, UnicodeError):
        raise errors.invalid_argument(
            "The continuation token provided is incorrect", "continuation-token", token
        ) from None
