"""SigV4 as AWS's front end checks it: the canonical request, the signature, and the checks
around them in AWS's order, with AWS's error names and texts (docs/aws-behaviours.md,
"Authentication").

The canonical URI and the signing key are the ones the project's own client signs with
(:mod:`clients.kms.signing`, standard library only), so they are written once. Everything here
is on the hot path of every ``sigv4`` request, hence the speed-ups: no I/O, no logging, regexes
compiled once, derived signing keys kept as ready-keyed HMACs per (secret, date, region), small
bodies hashed without handing the GIL away, and headers read straight from the WSGI environ.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any, Protocol
from urllib.parse import quote, unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, Headers

from clients.kms.signing import ALGORITHM, TERMINATOR, canonical_uri, signing_key
from kms_service.domain.errors import (
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from kms_service.wire.auth.credentials import Credential

SERVICE = "kms"
#: How far a request's date may be from the service clock; AWS's messages say "5 min.".
CLOCK_SKEW = timedelta(minutes=5)
#: The one ``X-Amz-Content-SHA256`` value that replaces the body hash in the canonical request.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# AWS's texts, verbatim (docs/aws-behaviours.md, "Authentication"). Some end in a space
# because AWS concatenates them.
MISSING_AUTHENTICATION_MESSAGE = "Request is missing Authentication Token"
UNKNOWN_ACCESS_KEY_MESSAGE = "The security token included in the request is invalid."
# AWS's session-token check answers the same text without the final period.
INVALID_SESSION_MESSAGE = "The security token included in the request is invalid"
HOST_NOT_SIGNED_MESSAGE = "'Host' must be a 'SignedHeader' in the AWS Authorization."
SIGNATURE_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

# Lenient on purpose (``local`` and other made-up regions work) but strict enough that the
# region can go into an ARN unescaped.
_REGION = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_MAX_REGION_LENGTH = 64
_BASIC_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
# The Authorization header exactly as every AWS SDK writes it: parsed by one match, with the
# same result as the general parser below (which handles any other spacing and order).
_CANONICAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), SignedHeaders=([^,\s]+), Signature=([^,\s]+)"
)
# hashlib keeps the GIL for updates under 2048 bytes (HASHLIB_GIL_MINSIZE); see _body_sha256.
_HASH_PIECE = 2047
_HASH_WITH_GIL_LIMIT = 64 * 1024


class HeaderSource(Protocol):
    """The part of werkzeug's ``Headers``/``EnvironHeaders`` used here (case-insensitive)."""

    def get(self, key: str) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


@functools.lru_cache(maxsize=64)
def is_region(value: str) -> bool:
    """True if ``value`` can be a region: lower-case words joined by ``-``, at most 64."""
    return len(value) <= _MAX_REGION_LENGTH and _REGION.fullmatch(value) is not None


def verify(
    method: str,
    path: str,
    query_string: str,
    headers: HeaderSource,
    body: bytes,
    now: datetime,
    lookup: Callable[[str], Credential | None],
) -> tuple[Credential, str]:
    """Check one request's SigV4 signature; answer its credential and its scope's region.

    ``path`` and ``query_string`` are as on the request line (still percent-encoded), ``now``
    is timezone aware, ``lookup`` finds the credential of an access key id. The checks run in
    AWS's order and raise :class:`MissingAuthenticationTokenException`,
    :class:`IncompleteSignatureException`, :class:`InvalidSignatureException` or
    :class:`UnrecognizedClientException` with AWS's message.
    """
    if isinstance(headers, EnvironHeaders):
        headers = EnvironHeaderView(headers.environ)
    now = now.astimezone(UTC)
    authorization = headers.get("Authorization")
    # AWS treats anything that is not an AWS4 header as no authentication at all.
    if not authorization or not authorization.strip().startswith("AWS4-"):
        raise MissingAuthenticationTokenException(MISSING_AUTHENTICATION_MESSAGE)
    algorithm, parameters = _parse_authorization(authorization)

    credential_parameter = parameters.get("Credential")
    signed_headers_parameter = parameters.get("SignedHeaders")
    signature = parameters.get("Signature")
    date_value = headers.get("X-Amz-Date") or headers.get("Date")
    problems = ""
    if not credential_parameter:
        problems += "Authorization header requires 'Credential' parameter. "
    if not signature:
        problems += "Authorization header requires 'Signature' parameter. "
    # AWS accepts an empty SignedHeaders here, and then fails the Host check below.
    if signed_headers_parameter is None:
        problems += "Authorization header requires 'SignedHeaders' parameter. "
    if not date_value:
        problems += (
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        )
    if problems:
        raise IncompleteSignatureException(f"{problems}Authorization={authorization}")
    assert credential_parameter and signature and signed_headers_parameter is not None
    assert date_value

    request_time, amz_date = _parse_request_date(date_value)
    _check_clock(request_time, amz_date, now)

    signed_header_names = _signed_header_names(signed_headers_parameter)
    if "host" not in signed_header_names:
        raise InvalidSignatureException(HOST_NOT_SIGNED_MESSAGE)
    if algorithm != ALGORITHM:
        raise IncompleteSignatureException(
            f"Unsupported AWS 'algorithm': '{algorithm}' (only {ALGORITHM} for now). "
        )

    # Trailing slashes do not count, as with Java's String.split in AWS's front end.
    scope = credential_parameter.rstrip("/").split("/")
    if len(scope) != 5:
        raise IncompleteSignatureException(
            "Credential must have exactly 5 slash-delimited elements, "
            f"e.g. keyid/date/region/service/term, got '{credential_parameter}'"
        )
    access_key_id, scope_date, region, service, terminator = scope
    _check_scope(scope_date, region, service, terminator, amz_date)

    credential = lookup(access_key_id)
    if credential is None:
        raise UnrecognizedClientException(UNKNOWN_ACCESS_KEY_MESSAGE)

    canonical_request = _canonical_request(
        method, path, query_string, headers, signed_header_names, signed_headers_parameter, body
    )
    string_to_sign = "\n".join(
        (
            ALGORITHM,
            amz_date,
            f"{scope_date}/{region}/{SERVICE}/{TERMINATOR}",
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        )
    )
    # A copy of an HMAC already keyed for this scope; not the one-shot hmac.digest, which
    # hands the GIL to another request thread and back around a microsecond of work.
    expected = _keyed_hmac(credential.secret_access_key, scope_date, region).copy()
    expected.update(string_to_sign.encode("utf-8"))
    # compare_digest on str rejects non-ASCII input; on bytes it takes anything.
    if not hmac.compare_digest(
        expected.hexdigest().encode("ascii"), signature.encode("utf-8", "surrogatepass")
    ):
        raise InvalidSignatureException(
            f"{SIGNATURE_MISMATCH_MESSAGE}\n\n"
            f"The Canonical String for this request should have been\n'{canonical_request}'\n\n"
            f"The String-to-Sign should have been\n'{string_to_sign}'\n"
        )

    _check_session_token(credential, headers.get("X-Amz-Security-Token"))
    return credential, region


def _parse_authorization(authorization: str) -> tuple[str, dict[str, str]]:
    """Split ``<algorithm> Name=value, Name=value`` into the algorithm and its parameters.

    Raises :class:`IncompleteSignatureException` for a parameter without ``=``.
    """
    fast = _CANONICAL_AUTHORIZATION.fullmatch(authorization)
    if fast is not None:
        credential, signed_headers, signature = fast.groups()
        return ALGORITHM, {
            "Credential": credential,
            "SignedHeaders": signed_headers,
            "Signature": signature,
        }
    algorithm, _, rest = authorization.strip().partition(" ")
    parameters: dict[str, str] = {}
    for piece in rest.split(","):
        piece = piece.strip()
        if not piece:
            continue
        name, equals, value = piece.partition("=")
        if not equals:
            raise IncompleteSignatureException(
                f"'{piece}' not a valid key=value pair (missing equal-sign) in "
                f"Authorization header: '{authorization}'."
            )
        parameters[name.strip()] = value.strip()
    return algorithm, parameters


# A client's requests within one second all carry the same date.
@functools.lru_cache(maxsize=16)
def _parse_request_date(value: str) -> tuple[datetime, str]:
    """The request time and its ISO-8601 basic form, from ``X-Amz-Date`` or ``Date``.

    ``X-Amz-Date`` is basic format; a ``Date`` header may also be RFC 1123, which botocore
    sends when a request already had one. Raises :class:`IncompleteSignatureException`.
    """
    match = _BASIC_DATE.fullmatch(value)
    try:
        if match:
            year, month, day, hour, minute, second = (int(part) for part in match.groups())
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC), value
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        parsed = None
    if parsed is None:
        raise IncompleteSignatureException(
            f"Date must be in ISO-8601 'basic format'. Got '{value}'. "
            "See http://en.wikipedia.org/wiki/ISO_8601"
        )
    # botocore writes "-0000" (RFC 2822's "UTC, source unknown"), which parses as naive.
    parsed = parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    return parsed, _basic_format(parsed)


def _basic_format(moment: datetime) -> str:
    return moment.strftime("%Y%m%dT%H%M%SZ")


def _check_clock(request_time: datetime, amz_date: str, now: datetime) -> None:
    """Raise :class:`InvalidSignatureException` if the request is more than 5 minutes off."""
    # Whole seconds, like the dates in the message, so the boundary reads consistently.
    now = now.replace(microsecond=0)
    earliest, latest = now - CLOCK_SKEW, now + CLOCK_SKEW
    if request_time < earliest:
        raise InvalidSignatureException(
            f"Signature expired: {amz_date} is now earlier than {_basic_format(earliest)} "
            f"({_basic_format(now)} - 5 min.)"
        )
    if request_time > latest:
        raise InvalidSignatureException(
            f"Signature not yet current: {amz_date} is still later than "
            f"{_basic_format(latest)} ({_basic_format(now)} + 5 min.)"
        )


def _check_scope(
    scope_date: str, region: str, service: str, terminator: str, amz_date: str
) -> None:
    """Raise :class:`InvalidSignatureException` listing every wrong part of the scope."""
    problems = ""
    if not is_region(region):
        problems += f"Credential should be scoped to a valid region, not '{region}'. "
    if service != SERVICE:
        problems += f"Credential should be scoped to correct service: '{SERVICE}'. "
    if terminator != TERMINATOR:
        problems += (
            f"Credential should be scoped with a valid terminator: '{TERMINATOR}', "
            f"not '{terminator}'. "
        )
    if scope_date != amz_date[:8]:
        problems += (
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date "
            f"from HTTP: '{scope_date}' != '{amz_date[:8]}', from '{amz_date}'."
        )
    if problems:
        raise InvalidSignatureException(problems)


def _check_session_token(credential: Credential, sent_token: str | None) -> None:
    """Raise :class:`UnrecognizedClientException` unless the token is the expected one."""
    expected = credential.session_token
    if expected is None:
        if sent_token:
            raise UnrecognizedClientException(INVALID_SESSION_MESSAGE)
        return
    if sent_token is None or not hmac.compare_digest(
        expected.encode("utf-8"), sent_token.encode("utf-8", "surrogatepass")
    ):
        raise UnrecognizedClientException(INVALID_SESSION_MESSAGE)


@functools.lru_cache(maxsize=64)
def _signed_header_names(signed_headers_parameter: str) -> tuple[str, ...]:
    """The ``SignedHeaders`` list as the canonical request names them (trimmed, lower-case).
    A client signs the same headers on every request, so this is worked out once."""
    return tuple(raw.strip().lower() for raw in signed_headers_parameter.split(";"))


def _canonical_request(
    method: str,
    path: str,
    query_string: str,
    headers: HeaderSource,
    signed_header_names: tuple[str, ...],
    signed_headers_parameter: str,
    body: bytes,
) -> str:
    """SigV4's canonical request (docs/aws-behaviours.md, "Authentication"), built as
    botocore builds it."""
    names = signed_header_names
    values = _signed_header_values(headers, names)
    canonical_headers = "".join(
        f"{name}:{','.join(' '.join(value.split()) for value in values[name])}\n" for name in names
    )
    # A declared body hash is signed but not trusted: only UNSIGNED-PAYLOAD replaces the real
    # hash, so a body changed after signing fails even when the client declared its hash.
    declared = headers.get("X-Amz-Content-SHA256")
    payload_hash = UNSIGNED_PAYLOAD if declared == UNSIGNED_PAYLOAD else _body_sha256(body)
    return "\n".join(
        (
            method,
            _canonical_uri(path),
            _canonical_query_string(query_string),
            canonical_headers,
            signed_headers_parameter,
            payload_hash,
        )
    )


def _signed_header_values(headers: HeaderSource, names: Iterable[str]) -> dict[str, list[str]]:
    """``headers.getlist(name)`` for each of ``names`` (lower-case), without the cost.

    werkzeug's ``getlist`` is ``[v for k, v in self if k.lower() == key]``: one pass over all
    headers per signed header was most of the SigV4 check's cost, so a ``Headers`` collection
    is walked once for all names. (A request's headers arrive here as an
    :class:`EnvironHeaderView`, whose ``getlist`` is one dictionary lookup.)
    """
    if not isinstance(headers, Headers):
        return {name: headers.getlist(name) for name in names}
    values: dict[str, list[str]] = {name: [] for name in names}
    for key, value in headers:
        found = values.get(key.lower())
        if found is not None:
            found.append(value)
    return values


class EnvironHeaderView:
    """A request's headers answered straight from its WSGI environ, exactly as werkzeug's
    ``EnvironHeaders`` answers them, without renaming every environ key on every lookup."""

    __slots__ = ("_environ",)

    def __init__(self, environ: dict[str, Any]) -> None:
        self._environ = environ

    def get(self, name: str) -> str | None:
        """``EnvironHeaders.get(name)``: Content-Type and Content-Length come from their
        CGI keys (even when empty), every other header from ``HTTP_<NAME>``."""
        value = self._environ.get(_environ_key(name))
        return None if value is None else str(value)

    def getlist(self, name: str) -> list[str]:
        """``EnvironHeaders.getlist(name)``: at most one value per name (the server joins
        repeated headers); empty Content-Type/Length and names with ``_`` have none."""
        if "_" in name or not name.isascii():
            # werkzeug names every environ key with dashes, and the rename is ASCII-only.
            return []
        key = _environ_key(name)
        value = self._environ.get(key)
        if not key.startswith("HTTP_"):  # Content-Type, Content-Length
            return [str(value)] if value else []  # werkzeug skips them when empty
        return [] if value is None else [str(value)]


@functools.lru_cache(maxsize=256)
def _environ_key(name: str) -> str:
    """The WSGI environ key of header ``name``, as werkzeug maps it. A request's header
    names come from a small set, so each is mapped once."""
    key = name.upper().replace("-", "_")
    return key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key


def _body_sha256(body: bytes) -> str:
    """The hex SHA-256 of a request body.

    hashlib releases the GIL for any input of 2 KiB or more. For a KMS body of a few KiB that
    release, and waiting to get the GIL back from the other request threads, cost more than
    the hash (measured: sigv4 Encrypt-4KiB at concurrency 16); so bodies under
    :data:`_HASH_WITH_GIL_LIMIT` are fed in pieces small enough to keep it. Larger bodies,
    rare here, let other threads run meanwhile.
    """
    if len(body) >= _HASH_WITH_GIL_LIMIT:
        return hashlib.sha256(body).hexdigest()
    digest = hashlib.sha256()
    view = memoryview(body)
    for start in range(0, len(body), _HASH_PIECE):
        digest.update(view[start : start + _HASH_PIECE])
    return digest.hexdigest()


@functools.lru_cache(maxsize=64)
def _canonical_uri(path: str) -> str:
    """:func:`clients.kms.signing.canonical_uri`, worked out once per distinct path: dot and
    empty segments removed, then URI-encoded again (SigV4's double encoding for every service
    but S3, exactly as botocore does)."""
    return canonical_uri(path)


@functools.lru_cache(maxsize=256)
def _keyed_hmac(secret_access_key: str, scope_date: str, region: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with the scope's signing key, never updated: each request
    signs with a ``copy()``, which skips setting up the key."""
    key = signing_key(secret_access_key, scope_date, region, SERVICE)
    return hmac.new(key, None, hashlib.sha256)


def _canonical_query_string(query_string: str) -> str:
    """Parameters decoded, re-encoded with RFC 3986 unreserved characters, sorted, joined."""
    if not query_string:
        return ""
    pairs: list[tuple[str, str]] = []
    for piece in query_string.split("&"):
        if not piece:
            continue
        name, _, value = piece.partition("=")
        pairs.append(
            (
                quote(unquote_to_bytes(name), safe="-_.~"),
                quote(unquote_to_bytes(value), safe="-_.~"),
            )
        )
    return "&".join(f"{name}={value}" for name, value in sorted(pairs))
