"""Bucket operations: CreateBucket, DeleteBucket, HeadBucket, ListBuckets,
GetBucketLocation, and Put/Get/DeleteBucketEncryption."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import time

from werkzeug.wrappers import Response

from s3_service import errors, xmlcodec
from s3_service.body import RequestBody
from s3_service.envelope import SSE_KMS, SSE_S3
from s3_service.records import BucketEncryption, BucketRecord
from s3_service.services import S3Services
from s3_service.wire import S3Request, empty_response, xml_response

_BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d+$")
#: Legacy location constraints S3 still accepts.
_LEGACY_LOCATIONS = {"EU": "eu-west-1"}


def validate_bucket_name(name: str) -> None:
    """S3's naming rules for general purpose buckets. Raises ``InvalidBucketName``."""
    if (
        not _BUCKET_NAME.match(name)
        or ".." in name
        or ".-" in name
        or "-." in name
        or name.startswith(("xn--", "sthree-"))
        or name.endswith(("-s3alias", "--ol-s3", "--x-s3"))
        or _is_ip_address(name)
    ):
        raise errors.invalid_bucket_name(name)


def _is_ip_address(name: str) -> bool:
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return False
    return True


def canonical_user_id(account_id: str) -> str:
    """A stable 64-hex canonical user id for an account, shaped like AWS's."""
    return hashlib.sha256(f"mock-kms:{account_id}".encode()).hexdigest()


def _bucket_name(request: S3Request) -> str:
    if request.bucket is None:
        raise errors.invalid_request("A bucket is required.")
    return request.bucket


def create_bucket(services: S3Services, request: S3Request) -> Response:
    """CreateBucket, in the region of ``LocationConstraint``, else the request's signing
    region, else the service's default. Re-creating one's own bucket is 409
    ``BucketAlreadyOwnedByYou`` except in us-east-1, where AWS answers 200."""
    name = _bucket_name(request)
    validate_bucket_name(name)
    region = request.caller.signed_region or services.default_region
    raw = RequestBody(
        request.stream,
        request.headers,
        max_size=xmlcodec.MAX_REQUEST_XML,
        chunk_check=request.chunk_check,
    )
    body = raw.read_all(xmlcodec.MAX_REQUEST_XML)
    if body.strip():
        document = xmlcodec.parse(body, "CreateBucketConfiguration")
        constraint = xmlcodec.text(document, "LocationConstraint")
        if constraint:
            region = _LEGACY_LOCATIONS.get(constraint, constraint)
            if not _REGION.match(region) or constraint == "us-east-1":
                raise errors.invalid_location_constraint(constraint)
    record = BucketRecord(name, request.caller.account_id, region, time.time())
    created = services.store.create_bucket(record)
    if not created and region != "us-east-1":
        raise errors.bucket_already_owned_by_you(name)
    return empty_response(request, headers={"Location": f"/{name}"})


def delete_bucket(services: S3Services, request: S3Request) -> Response:
    """DeleteBucket: only when empty; in-progress multipart uploads are aborted with it."""
    services.blobs.delete(services.store.delete_bucket(_bucket_name(request)))
    return empty_response(request, status=204)


def head_bucket(services: S3Services, request: S3Request) -> Response:
    bucket = services.store.get_bucket(_bucket_name(request))
    return empty_response(
        request,
        headers={"x-amz-bucket-region": bucket.region, "x-amz-access-point-alias": "false"},
    )


def get_bucket_location(services: S3Services, request: S3Request) -> Response:
    bucket = services.store.get_bucket(_bucket_name(request))
    # us-east-1 is reported as an empty constraint, as AWS does.
    location = "" if bucket.region == "us-east-1" else bucket.region
    return xml_response(request, xmlcodec.text_document("LocationConstraint", location))


def list_buckets(services: S3Services, request: S3Request) -> Response:
    """ListBuckets: the caller's account's buckets (``prefix`` and ``bucket-region`` filters,
    ``max-buckets``/``continuation-token`` paging)."""
    account = request.caller.account_id
    prefix = request.query.get("prefix", "")
    region = request.query.get("bucket-region")
    after = request.query.get("continuation-token", "")
    limit_text = request.query.get("max-buckets")
    limit = 10000
    if limit_text is not None:
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= 10000:
            raise errors.invalid_argument(
                "Argument max-buckets must be an integer between 1 and 10000",
                "max-buckets",
                limit_text,
            )
        limit = int(limit_text)
    buckets = [
        b
        for b in services.store.list_buckets(account)
        if b.name.startswith(prefix) and (region is None or b.region == region) and b.name > after
    ]
    page, more = buckets[:limit], len(buckets) > limit
    entries: list[xmlcodec.Child] = [
        (
            "Bucket",
            [
                ("Name", b.name),
                ("CreationDate", xmlcodec.timestamp(b.created)),
                ("BucketRegion", b.region),
            ],
        )
        for b in page
    ]
    children: list[xmlcodec.Child] = [
        ("Owner", [("ID", canonical_user_id(account))]),
        ("Buckets", entries),
    ]
    if more:
        children.append(("ContinuationToken", page[-1].name))
    if prefix:
        children.append(("Prefix", prefix))
    return xml_response(request, xmlcodec.document("ListAllMyBucketsResult", children))


def put_bucket_encryption(services: S3Services, request: S3Request) -> Response:
    """PutBucketEncryption: one rule with ``AES256`` or ``aws:kms`` (optionally a key id and
    ``BucketKeyEnabled``) and optionally ``BlockedEncryptionTypes``."""
    name = _bucket_name(request)
    services.store.get_bucket(name)
    raw = RequestBody(
        request.stream,
        request.headers,
        max_size=xmlcodec.MAX_REQUEST_XML,
        chunk_check=request.chunk_check,
    )
    document = xmlcodec.parse(
        raw.read_all(xmlcodec.MAX_REQUEST_XML), "ServerSideEncryptionConfiguration"
    )
    rules = document.findall("Rule")
    if len(rules) != 1:
        raise errors.malformed_xml()
    rule = rules[0]
    default = rule.find("ApplyServerSideEncryptionByDefault")
    algorithm = SSE_S3
    key_id: str | None = None
    if default is not None:
        algorithm = xmlcodec.text(default, "SSEAlgorithm") or ""
        key_id = xmlcodec.text(default, "KMSMasterKeyID") or None
        if algorithm == "aws:kms:dsse":
            raise errors.not_implemented("DSSE-KMS (aws:kms:dsse)")
        if algorithm not in (SSE_S3, SSE_KMS):
            raise errors.malformed_xml()
        if key_id is not None and algorithm != SSE_KMS:
            raise errors.invalid_argument(
                "a KMSMasterKeyID is not applicable if the default sse algorithm is not aws:kms",
                "ApplyServerSideEncryptionByDefault",
            )
    bucket_key = (xmlcodec.text(rule, "BucketKeyEnabled") or "false").lower() == "true"
    blocked = rule.find("BlockedEncryptionTypes")
    blocked_types = (
        {item.text or "" for item in blocked.findall("EncryptionType")}
        if blocked is not None
        else set()
    )
    if not blocked_types <= {"NONE", "SSE-C"} or blocked_types == {"NONE", "SSE-C"}:
        raise errors.malformed_xml()
    configuration = BucketEncryption(algorithm, key_id, bucket_key, "SSE-C" in blocked_types)
    services.store.set_bucket_encryption(name, configuration)
    return empty_response(request)


def get_bucket_encryption(services: S3Services, request: S3Request) -> Response:
    """GetBucketEncryption: a bucket without a configuration reports SSE-S3, as on AWS."""
    bucket = services.store.get_bucket(_bucket_name(request))
    configuration = bucket.effective_encryption
    by_default: list[xmlcodec.Child] = [("SSEAlgorithm", configuration.algorithm)]
    if configuration.kms_key_id:
        by_default.append(("KMSMasterKeyID", configuration.kms_key_id))
    rule: list[xmlcodec.Child] = [
        ("ApplyServerSideEncryptionByDefault", by_default),
        ("BucketKeyEnabled", configuration.bucket_key),
    ]
    if configuration.blocked_sse_c:
        rule.append(("BlockedEncryptionTypes", [("EncryptionType", "SSE-C")]))
    body = xmlcodec.document("ServerSideEncryptionConfiguration", [("Rule", rule)])
    return xml_response(request, body)


def delete_bucket_encryption(services: S3Services, request: S3Request) -> Response:
    """DeleteBucketEncryption: back to the SSE-S3 default."""
    services.store.set_bucket_encryption(_bucket_name(request), None)
    return empty_response(request, status=204)
