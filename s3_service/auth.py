"""SigV4 for the S3 endpoint in ``sigv4`` mode, checked as AWS S3 checks it: header-signed
requests (a hex payload hash, ``UNSIGNED-PAYLOAD``, or ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD``
with every chunk signature checked as the body is read) and presigned URLs with their
expiry, against the access keys of the same credentials file as the KMS side. Errors are
S3's: ``SignatureDoesNotMatch``, ``InvalidAccessKeyId``, ``AccessDenied``,
``RequestTimeTooSkewed`` (docs/access-control.md, "S3").

In ``open`` mode nothing is checked; a profile's access key id still takes its account.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import quote, unquote

from clients.kms.signing import signing_key
from kms_service.wire.auth.credentials import Credential, CredentialStore
from s3_service.errors import S3Error
from s3_service.wire import Caller, S3Request

ALGORITHM = "AWS4-HMAC-SHA256"
STREAMING_SIGNED = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD"
UNSIGNED = "UNSIGNED-PAYLOAD"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
#: S3 accepts requests up to 15 minutes off its clock.
MAX_SKEW = timedelta(minutes=15)
MAX_PRESIGNED_EXPIRY_S = 7 * 24 * 3600
_AUTHORIZATION = re.compile(
    r"^AWS4-HMAC-SHA256\s+Credential=(?P<credential>[^,\s]+)\s*,\s*"
    r"SignedHeaders=(?P<signed>[^,\s]+)\s*,\s*Signature=(?P<signature>[0-9a-fA-F]+)\s*$"
)
_SPACES = re.compile(r"\s+")
_MISMATCH = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your key and signing method."
)


def signature_does_not_match(access_key_id: str, string_to_sign: str, canonical: str) -> S3Error:
    return S3Error(
        403,
        "SignatureDoesNotMatch",
        _MISMATCH,
        AWSAccessKeyId=access_key_id,
        StringToSign=string_to_sign,
        CanonicalRequest=canonical,
    )


def invalid_access_key_id(access_key_id: str) -> S3Error:
    return S3Error(
        403,
        "InvalidAccessKeyId",
        "The AWS Access Key Id you provided does not exist in our records.",
        AWSAccessKeyId=access_key_id,
    )


def _basic(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


@dataclass
class ChunkSignatures:
    """The chain of ``STREAMING-AWS4-HMAC-SHA256-PAYLOAD`` chunk signatures: each chunk's
    signature signs its data and the previous signature, starting from the seed (the
    request's own signature)."""

    key: bytes
    amz_date: str
    scope: str
    previous: str
    access_key_id: str

    def check(self, signature: str | None, data_sha256: str) -> None:
        """Check one chunk's signature (the final, empty chunk included); raises
        ``SignatureDoesNotMatch``."""
        string_to_sign = "\n".join(
            (
                "AWS4-HMAC-SHA256-PAYLOAD",
                self.amz_date,
                self.scope,
                self.previous,
                EMPTY_SHA256,
                data_sha256,
            )
        )
        expected = hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        if signature is None or not hmac.compare_digest(expected, signature.lower()):
            raise signature_does_not_match(self.access_key_id, string_to_sign, "")
        self.previous = expected


@dataclass(frozen=True)
class Verified:
    """A verified caller, and the chunk-signature chain when the body is signed chunk by
    chunk."""

    caller: Caller
    chunks: ChunkSignatures | None = None


class S3Authenticator:
    """Turns an S3 request into its verified caller, or raises S3's error."""

    def __init__(
        self,
        mode: str,
        credentials: CredentialStore | None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.mode = mode
        self._credentials = credentials
        self._clock = clock

    def authenticate(self, request: S3Request, raw_path: str, raw_query: str) -> Verified:
        """The caller of ``request``. ``raw_path``/``raw_query`` are as on the request line.

        Raises :class:`S3Error` (403) in ``sigv4`` mode for anything AWS S3 would refuse.
        """
        if self.mode != "sigv4":
            return Verified(self._open_caller(request.caller))
        assert self._credentials is not None
        query = request.query
        if "X-Amz-Signature" in query or "X-Amz-Algorithm" in query:
            return self._presigned(request, raw_path, raw_query)
        authorization = request.headers.get("Authorization")
        if authorization is None:
            raise S3Error(403, "AccessDenied", "Access Denied")
        match = _AUTHORIZATION.match(authorization.strip())
        if match is None:
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed; it must be AWS4-HMAC-SHA256 "
                "Credential=..., SignedHeaders=..., Signature=...",
            )
        amz_date = request.headers.get("x-amz-date") or ""
        moment = self._parse_date(amz_date)
        self._check_skew(moment)
        payload = (request.headers.get("x-amz-content-sha256") or "").strip()
        if not payload:
            raise S3Error(
                400,
                "InvalidRequest",
                "Missing required header for this request: x-amz-content-sha256",
            )
        credential, key, scope = self._credential(match["credential"], amz_date)
        canonical = self._canonical_request(
            request, raw_path, raw_query, match["signed"], payload, exclude_signature=False
        )
        string_to_sign = self._string_to_sign(amz_date, scope, canonical)
        self._compare(key, string_to_sign, match["signature"], credential, canonical)
        self._check_token(request, credential)
        caller = self._caller(credential, scope)
        if payload == STREAMING_SIGNED:
            chain = ChunkSignatures(
                key, amz_date, scope, match["signature"].lower(), credential.access_key_id
            )
            return Verified(caller, chain)
        return Verified(caller)

    # --- parts ---------------------------------------------------------------------------
    def _open_caller(self, caller: Caller) -> Caller:
        if self._credentials is None or caller.access_key_id is None:
            return caller
        credential = self._credentials.lookup(caller.access_key_id)
        if credential is None:
            return caller
        return Caller(caller.access_key_id, caller.signed_region, credential.account_id)

    @staticmethod
    def _parse_date(amz_date: str) -> datetime:
        try:
            return datetime.strptime(amz_date, "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
        except ValueError:
            raise S3Error(
                403, "AccessDenied", "AWS authentication requires a valid Date or x-amz-date header"
            ) from None

    def _check_skew(self, moment: datetime) -> None:
        now = self._clock()
        if abs(now - moment) > MAX_SKEW:
            raise S3Error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the current time is too large.",
                RequestTime=_basic(moment),
                ServerTime=now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                MaxAllowedSkewMilliseconds="900000",
            )

    def _credential(self, parameter: str, amz_date: str) -> tuple[Credential, bytes, str]:
        parts = parameter.split("/")
        if len(parts) != 5 or parts[3] != "s3" or parts[4] != "aws4_request":
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; the Credential is mal-formed; "
                f'expecting "<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request". ({parameter})',
            )
        access_key_id, date, region, service, _ = parts
        assert self._credentials is not None
        credential = self._credentials.lookup(access_key_id)
        if credential is None:
            raise invalid_access_key_id(access_key_id)
        if date != amz_date[:8]:
            raise S3Error(
                400,
                "AuthorizationHeaderMalformed",
                f"The authorization header is malformed; Invalid credential date. Date is not "
                f'the same as X-Amz-Date: "{date}".',
            )
        key = signing_key(credential.secret_access_key, date, region, service)
        return credential, key, f"{date}/{region}/{service}/aws4_request"

    @staticmethod
    def _string_to_sign(amz_date: str, scope: str, canonical: str) -> str:
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return f"{ALGORITHM}\n{amz_date}\n{scope}\n{digest}"

    @staticmethod
    def _compare(
        key: bytes, string_to_sign: str, signature: str, credential: Credential, canonical: str
    ) -> None:
        expected = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature.lower()):
            raise signature_does_not_match(credential.access_key_id, string_to_sign, canonical)

    @staticmethod
    def _check_token(request: S3Request, credential: Credential) -> None:
        sent = request.headers.get("x-amz-security-token") or request.query.get(
            "X-Amz-Security-Token"
        )
        expected = credential.session_token
        if expected is None and sent is None:
            return
        if expected is None or sent is None or not hmac.compare_digest(expected, sent):
            raise S3Error(
                400, "InvalidToken", "The provided token is malformed or otherwise invalid."
            )

    @staticmethod
    def _caller(credential: Credential, scope: str) -> Caller:
        region = scope.split("/")[1]
        return Caller(credential.access_key_id, region, credential.account_id)

    def _presigned(self, request: S3Request, raw_path: str, raw_query: str) -> Verified:
        query = request.query
        if query.get("X-Amz-Algorithm") != ALGORITHM:
            raise S3Error(
                400,
                "AuthorizationQueryParametersError",
                'X-Amz-Algorithm only supports "AWS4-HMAC-SHA256"',
            )
        missing = [
            name
            for name in (
                "X-Amz-Credential",
                "X-Amz-Date",
                "X-Amz-Expires",
                "X-Amz-SignedHeaders",
                "X-Amz-Signature",
            )
            if name not in query
        ]
        if missing:
            raise S3Error(
                400,
                "AuthorizationQueryParametersError",
                "Query-string authentication version 4 requires the X-Amz-Algorithm, "
                "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
                "X-Amz-Expires parameters.",
            )
        amz_date = query["X-Amz-Date"]
        moment = self._parse_date(amz_date)
        try:
            expires = int(query["X-Amz-Expires"])
        except ValueError:
            expires = -1
        if not 0 <= expires <= MAX_PRESIGNED_EXPIRY_S:
            raise S3Error(
                400,
                "AuthorizationQueryParametersError",
                "X-Amz-Expires must be non-negative and less than 604800 seconds",
            )
        credential, key, scope = self._credential(query["X-Amz-Credential"], amz_date)
        now = self._clock()
        if now > moment + timedelta(seconds=expires):
            raise S3Error(
                403,
                "AccessDenied",
                "Request has expired",
                **{
                    "X-Amz-Expires": str(expires),
                    "Expires": _basic(moment + timedelta(seconds=expires)),
                    "ServerTime": _basic(now),
                },
            )
        if moment - now > MAX_SKEW:
            raise S3Error(403, "AccessDenied", "Request is not valid yet")
        canonical = self._canonical_request(
            request,
            raw_path,
            raw_query,
            query["X-Amz-SignedHeaders"],
            UNSIGNED,
            exclude_signature=True,
        )
        string_to_sign = self._string_to_sign(amz_date, scope, canonical)
        self._compare(key, string_to_sign, query["X-Amz-Signature"], credential, canonical)
        self._check_token(request, credential)
        return Verified(self._caller(credential, scope))

    @staticmethod
    def _canonical_request(
        request: S3Request,
        raw_path: str,
        raw_query: str,
        signed: str,
        payload: str,
        *,
        exclude_signature: bool,
    ) -> str:
        names = signed.split(";")
        lines = []
        for name in names:
            values = request.headers.getlist(name)
            lines.append(f"{name}:{','.join(_SPACES.sub(' ', v.strip()) for v in values)}")
        pairs = []
        for item in raw_query.split("&") if raw_query else []:
            name, _, value = item.partition("=")
            name, value = unquote(name), unquote(value)
            if exclude_signature and name == "X-Amz-Signature":
                continue
            pairs.append((quote(name, safe="-_.~"), quote(value, safe="-_.~")))
        pairs.sort()
        query = "&".join(f"{n}={v}" for n, v in pairs)
        return "\n".join(
            (request.method, raw_path or "/", query, "\n".join(lines) + "\n", signed, payload)
        )
