"""Every S3 error a caller can see: one constructor per AWS error code, with AWS's status and
text (docs/aws-behaviours.md, "S3 endpoint", for the encryption ones).

Handlers raise :class:`S3Error`; :mod:`s3_service.wire` turns it into S3's XML error body.
Keeping the names and texts in one module keeps them consistent across operations.
"""

from __future__ import annotations

from kms_service.domain.errors import DATABASE_UNAVAILABLE_MESSAGE


class S3Error(Exception):
    """An AWS-shaped S3 error: HTTP ``status``, error ``code``, ``message`` and any extra
    elements AWS adds to the ``<Error>`` body (``BucketName``, ``Key``, ``ArgumentName``...).

    The message is never empty, as S3's never is: clients rely on it (the AWS CLI fails with
    ``argument of type 'NoneType' is not iterable`` on ``<Message />``), so an empty one, such
    as a KMS error passed through without a message, is replaced by :func:`default_message`.
    """

    def __init__(self, status: int, code: str, message: str | None, **details: str) -> None:
        message = message if message and message.strip() else default_message(code)
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details


def default_message(code: str) -> str:
    """The message of an error that came without one (``KMS.InvalidCiphertextException``
    from a KMS that, like AWS's, sends that error with no message)."""
    if code.startswith("KMS."):
        return f"The KMS request failed with {code[4:]}."
    return f"The request failed with {code}."


# --- buckets ------------------------------------------------------------------------------
def no_such_bucket(bucket: str) -> S3Error:
    return S3Error(404, "NoSuchBucket", "The specified bucket does not exist", BucketName=bucket)


def bucket_already_exists(bucket: str) -> S3Error:
    return S3Error(
        409,
        "BucketAlreadyExists",
        "The requested bucket name is not available. The bucket namespace is shared by all "
        "users of the system. Please select a different name and try again.",
        BucketName=bucket,
    )


def bucket_already_owned_by_you(bucket: str) -> S3Error:
    return S3Error(
        409,
        "BucketAlreadyOwnedByYou",
        "Your previous request to create the named bucket succeeded and you already own it.",
        BucketName=bucket,
    )


def bucket_not_empty(bucket: str) -> S3Error:
    return S3Error(
        409, "BucketNotEmpty", "The bucket you tried to delete is not empty", BucketName=bucket
    )


def invalid_bucket_name(bucket: str) -> S3Error:
    return S3Error(
        400, "InvalidBucketName", "The specified bucket is not valid.", BucketName=bucket
    )


def invalid_location_constraint(value: str) -> S3Error:
    return S3Error(
        400,
        "InvalidLocationConstraint",
        "The specified location-constraint is not valid",
        LocationConstraint=value,
    )


# --- objects ------------------------------------------------------------------------------
def no_such_key(key: str) -> S3Error:
    return S3Error(404, "NoSuchKey", "The specified key does not exist.", Key=key)


def no_such_version(key: str, version_id: str) -> S3Error:
    return S3Error(
        404,
        "NoSuchVersion",
        "The specified version does not exist.",
        Key=key,
        VersionId=version_id,
    )


def key_too_long() -> S3Error:
    return S3Error(400, "KeyTooLongError", "Your key is too long")


def metadata_too_large() -> S3Error:
    return S3Error(
        400, "MetadataTooLarge", "Your metadata headers exceed the maximum allowed metadata size."
    )


def invalid_range(requested: str, size: int) -> S3Error:
    return S3Error(
        416,
        "InvalidRange",
        "The requested range is not satisfiable",
        RangeRequested=requested,
        ActualObjectSize=str(size),
    )


def precondition_failed(condition: str) -> S3Error:
    return S3Error(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
        Condition=condition,
    )


def illegal_copy_to_itself() -> S3Error:
    return S3Error(
        400,
        "InvalidRequest",
        "This copy request is illegal because it is trying to copy an object to itself without "
        "changing the object's metadata, storage class, website redirect location or "
        "encryption attributes.",
    )


# --- request bodies -----------------------------------------------------------------------
def missing_content_length() -> S3Error:
    return S3Error(411, "MissingContentLength", "You must provide the Content-Length HTTP header.")


def incomplete_body() -> S3Error:
    return S3Error(
        400,
        "IncompleteBody",
        "You did not provide the number of bytes specified by the Content-Length HTTP header",
    )


def entity_too_large(size: int, limit: int) -> S3Error:
    return S3Error(
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size",
        ProposedSize=str(size),
        MaxSizeAllowed=str(limit),
    )


def entity_too_small(size: int, minimum: int) -> S3Error:
    return S3Error(
        400,
        "EntityTooSmall",
        "Your proposed upload is smaller than the minimum allowed object size.",
        ProposedSize=str(size),
        MinSizeAllowed=str(minimum),
    )


def bad_digest() -> S3Error:
    return S3Error(
        400, "BadDigest", "The Content-MD5 you specified did not match what we received."
    )


def invalid_digest() -> S3Error:
    return S3Error(400, "InvalidDigest", "The Content-MD5 you specified was invalid.")


def checksum_mismatch(algorithm: str) -> S3Error:
    return S3Error(
        400,
        "BadDigest",
        f"The {algorithm.upper()} you specified did not match the calculated checksum.",
    )


def content_sha256_mismatch(claimed: str, computed: str) -> S3Error:
    return S3Error(
        400,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
        ClientComputedContentSHA256=claimed,
        S3ComputedContentSHA256=computed,
    )


def malformed_xml() -> S3Error:
    return S3Error(
        400,
        "MalformedXML",
        "The XML you provided was not well-formed or did not validate against our published schema",
    )


# --- multipart ----------------------------------------------------------------------------
def no_such_upload(upload_id: str) -> S3Error:
    return S3Error(
        404,
        "NoSuchUpload",
        "The specified upload does not exist. The upload ID may be invalid, or the upload may "
        "have been aborted or completed.",
        UploadId=upload_id,
    )


def invalid_part(part_number: int, etag: str) -> S3Error:
    return S3Error(
        400,
        "InvalidPart",
        "One or more of the specified parts could not be found.  The part may not have been "
        "uploaded, or the specified entity tag may not match the part's entity tag.",
        PartNumber=str(part_number),
        ETag=etag,
    )


def invalid_part_order() -> S3Error:
    return S3Error(
        400,
        "InvalidPartOrder",
        "The list of parts was not in ascending order. Parts must be ordered by part number.",
    )


def invalid_part_number() -> S3Error:
    return invalid_argument(
        "Part number must be an integer between 1 and 10000, inclusive", "partNumber"
    )


# --- generic ------------------------------------------------------------------------------
def invalid_argument(message: str, name: str = "", value: str | None = None) -> S3Error:
    details: dict[str, str] = {}
    if name:
        details["ArgumentName"] = name
        details["ArgumentValue"] = "null" if value is None else value
    return S3Error(400, "InvalidArgument", message, **details)


def invalid_request(message: str) -> S3Error:
    return S3Error(400, "InvalidRequest", message)


def access_denied(message: str = "Access Denied") -> S3Error:
    return S3Error(403, "AccessDenied", message)


def method_not_allowed(method: str, resource: str) -> S3Error:
    return S3Error(
        405,
        "MethodNotAllowed",
        "The specified method is not allowed against this resource.",
        Method=method,
        ResourceType=resource,
    )


def header_not_implemented(header: str) -> S3Error:
    """S3's answer to a header it does not implement (``Transfer-Encoding: gzip``)."""
    return S3Error(
        501,
        "NotImplemented",
        "A header you provided implies functionality that is not implemented",
        Header=header,
    )


def request_header_section_too_large() -> S3Error:
    """A request line or header section over the HTTP layer's limits."""
    return S3Error(
        400,
        "RequestHeaderSectionTooLarge",
        "The request header and query parameters used to make the request exceed the maximum "
        "allowed size.",
    )


def not_implemented(what: str) -> S3Error:
    return S3Error(
        501,
        "NotImplemented",
        f"A header you provided implies functionality that is not implemented ({what} is not "
        "supported by mock-kms's S3 endpoint)",
    )


def service_unavailable() -> S3Error:
    """The database cannot be reached (PostgreSQL restarting, say): S3's retryable 503, which
    the AWS SDKs retry. Nothing of the request was committed."""
    return S3Error(503, "ServiceUnavailable", DATABASE_UNAVAILABLE_MESSAGE)


def internal_error(request_id: str) -> S3Error:
    return S3Error(
        500,
        "InternalError",
        f"We encountered an internal error. Please try again. (request id {request_id})",
    )


# --- server-side encryption (docs/aws-behaviours.md, "S3 endpoint") --------------------------
SSE_C_INSECURE = (
    "Requests specifying Server Side Encryption with Customer provided keys must be made over "
    "a secure connection."
)


def sse_c_over_http() -> S3Error:
    # AWS's exact answer is unrecorded; every S3-compatible server answers this
    # (docs/aws-behaviours.md, "Choices where AWS is unverified").
    return invalid_request(SSE_C_INSECURE)


def sse_c_with_other_method() -> S3Error:
    return invalid_argument(
        "Server Side Encryption with Customer provided key is incompatible with the encryption "
        "method specified",
        "x-amz-server-side-encryption",
    )


def sse_c_bad_algorithm(header: str, value: str) -> S3Error:
    return S3Error(
        400,
        "InvalidEncryptionAlgorithmError",
        "The Encryption request you specified is not valid. Supported value: AES256.",
        ArgumentName=header,
        ArgumentValue=value,
    )


def sse_c_missing_algorithm(header: str) -> S3Error:
    return invalid_argument(
        "Requests specifying Server Side Encryption with Customer provided keys must provide a "
        "valid encryption algorithm.",
        header,
    )


def sse_c_missing_key(header: str) -> S3Error:
    return invalid_argument(
        "Requests specifying Server Side Encryption with Customer provided keys must provide an "
        "appropriate secret key.",
        header,
    )


def sse_c_missing_md5(header: str) -> S3Error:
    return invalid_argument(
        "Requests specifying Server Side Encryption with Customer provided keys must provide "
        "the client calculated MD5 of the secret key.",
        header,
    )


def sse_c_md5_mismatch(header: str) -> S3Error:
    return invalid_argument(
        "The calculated MD5 hash of the key did not match the hash that was provided.", header
    )


def sse_c_invalid_key(header: str) -> S3Error:
    return invalid_argument("The secret key was invalid for the specified algorithm.", header)


def sse_c_key_required() -> S3Error:
    return invalid_request(
        "The object was stored using a form of Server Side Encryption. The correct parameters "
        "must be provided to retrieve the object."
    )


def sse_c_wrong_key() -> S3Error:
    return access_denied(
        "Requests specifying Server Side Encryption with Customer provided keys must provide the "
        "correct secret key."
    )


def sse_c_not_applicable() -> S3Error:
    return invalid_request("The encryption parameters are not applicable to this object.")


def sse_c_part_missing() -> S3Error:
    return invalid_request(
        "The multipart upload initiate requested encryption. Subsequent part requests must "
        "include the appropriate encryption parameters."
    )


def sse_c_part_mismatch() -> S3Error:
    return invalid_request(
        "The provided encryption parameters did not match the ones used originally."
    )


def sse_c_blocked(bucket: str) -> S3Error:
    return access_denied(
        f"Requests specifying Server Side Encryption with Customer provided keys (SSE-C) are not "
        f"allowed because this bucket has blocked upload requests that specify Server Side "
        f"Encryption with Customer provided keys (SSE-C). Bucket: {bucket}"
    )


def sse_not_supported_on_read() -> S3Error:
    return invalid_argument(
        "x-amz-server-side-encryption header is not supported for this operation.",
        "x-amz-server-side-encryption",
    )


def sse_unknown_method(value: str) -> S3Error:
    return invalid_argument(
        "The encryption method specified is not supported", "x-amz-server-side-encryption", value
    )


def sse_kms_header_without_kms(header: str, value: str) -> S3Error:
    return invalid_argument(
        "Server Side Encryption with AWS KMS managed key requires HTTP header "
        "x-amz-server-side-encryption : aws:kms",
        header,
        value,
    )


def sse_kms_bad_context() -> S3Error:
    return invalid_argument(
        "The header 'x-amz-server-side-encryption-context' shall be Base64-encoded UTF-8 string "
        "holding JSON which represents a string-string map",
        "x-amz-server-side-encryption-context",
    )


def sse_kms_context_arn_mismatch(expected: str) -> S3Error:
    # AWS validates the value; its exact wording is not recorded
    # (docs/aws-behaviours.md, "Choices where AWS is unverified").
    return invalid_argument(
        f"The encryption context key 'aws:s3:arn' must be {expected!r} for this request.",
        "x-amz-server-side-encryption-context",
    )


def kms_error(code: str, message: str | None) -> S3Error:
    """A KMS failure as S3 surfaces it: 400 ``KMS.<Name>`` with the KMS's message (or, when
    the KMS sent none, :func:`default_message`)."""
    return S3Error(400, f"KMS.{code}", message)


def kms_unreachable(endpoint: str, reason: str) -> S3Error:
    return S3Error(
        500,
        "InternalError",
        f"The S3 endpoint could not reach the KMS at {endpoint}: {reason}. Check "
        "--s3-kms-endpoint and that the KMS is running.",
    )
