"""Who is calling: SigV4 verification, and the account and region a request acts in.

Two modes:

* ``open`` trusts every request, as LocalStack does. It only reads the access key and the
  region from the ``Authorization`` header, so that ARNs come out in the caller's region and
  a 12-digit access key id can stand for an account.
* ``sigv4`` verifies every request as AWS's front end does (reference §2.2), runs its checks
  in AWS's order (§2.4) and fails with AWS's error names and texts, so a misconfigured client
  fails here exactly as it would against AWS KMS.

The hot path does no I/O and no logging: regexes are compiled once, and derived signing keys
are cached per (secret, date, region).
"""

from __future__ import annotations

import configparser
import functools
import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, unquote_to_bytes

from werkzeug.datastructures import EnvironHeaders, Headers

from kms_service.domain.errors import (
    ConfigurationError,
    IncompleteSignatureException,
    InvalidSignatureException,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)

AUTH_MODES = ("open", "sigv4")
ALGORITHM = "AWS4-HMAC-SHA256"
SERVICE = "kms"
TERMINATOR = "aws4_request"
#: How far a request's date may be from the service clock; AWS's messages say "5 min.".
CLOCK_SKEW = timedelta(minutes=5)
#: The one ``X-Amz-Content-SHA256`` value that replaces the body hash in the canonical request.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"

# AWS's texts, verbatim (reference §2.4). Some end in a space because AWS concatenates them.
MISSING_AUTHENTICATION_MESSAGE = "Request is missing Authentication Token"
UNKNOWN_ACCESS_KEY_MESSAGE = "The security token included in the request is invalid."
# AWS's session-token check answers the same text without the final period (§2.4 row 11).
INVALID_SESSION_MESSAGE = "The security token included in the request is invalid"
HOST_NOT_SIGNED_MESSAGE = "'Host' must be a 'SignedHeader' in the AWS Authorization."
SIGNATURE_MISMATCH_MESSAGE = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)

_ACCOUNT_ID = re.compile(r"[0-9]{12}")
# Lenient on purpose (``local`` and other made-up regions work) but strict enough that the
# region can go into an ARN unescaped.
_REGION = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
_BASIC_DATE = re.compile(r"([0-9]{4})([0-9]{2})([0-9]{2})T([0-9]{2})([0-9]{2})([0-9]{2})Z")
_OPEN_CREDENTIAL = re.compile(r"Credential=([^,\s]*)")
_OPEN_CALLER_CACHE_LIMIT = 1024
# The Authorization header exactly as every AWS SDK writes it: parsed by one match, with the
# same result as the general parser below (which handles any other spacing and order).
_CANONICAL_AUTHORIZATION = re.compile(
    r"AWS4-HMAC-SHA256 Credential=([^,\s]+), SignedHeaders=([^,\s]+), Signature=([^,\s]+)"
)
# hashlib keeps the GIL for updates under 2048 bytes (HASHLIB_GIL_MINSIZE); see _body_sha256.
_HASH_PIECE = 2047
_HASH_WITH_GIL_LIMIT = 64 * 1024
# Access key ids go into ``Credential=<id>/...``; a comma, slash or space would break it.
_ACCESS_KEY_ID = re.compile(r"[A-Za-z0-9_.@+-]{1,128}")
# The profile name becomes an IAM user name in the principal ARN, so it follows IAM's pattern.
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_+=,.@-]{1,64}")
# configparser gives the section named here to every other section as defaults. AWS
# credentials files have no such section, and no ``[...]`` header can name the empty string.
_NO_DEFAULT_SECTION = ""
_MAX_REGION_LENGTH = 64


class HeaderSource(Protocol):
    """The part of werkzeug's ``Headers``/``EnvironHeaders`` used here (case-insensitive)."""

    def get(self, key: str) -> str | None: ...

    def getlist(self, key: str) -> list[str]: ...


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request."""

    access_key_id: str | None
    account_id: str
    region: str
    principal_arn: str


@dataclass(frozen=True)
class Credential:
    """One profile of a credentials file. The secret and the token never appear in a repr."""

    profile: str
    access_key_id: str
    secret_access_key: str = field(repr=False)
    account_id: str
    session_token: str | None = field(default=None, repr=False)

    @property
    def principal_arn(self) -> str:
        """The IAM user this profile stands for: ``arn:aws:iam::<account>:user/<profile>``."""
        return f"arn:aws:iam::{self.account_id}:user/{self.profile}"


class CredentialStore:
    """The access keys the ``sigv4`` mode accepts, by access key id."""

    def __init__(self, credentials: Iterable[Credential]) -> None:
        """Index ``credentials``; raises ``ValueError`` if two share an access key id."""
        self._by_access_key_id: dict[str, Credential] = {}
        for credential in credentials:
            if credential.access_key_id in self._by_access_key_id:
                raise ValueError(f"duplicate access key id {credential.access_key_id!r}")
            self._by_access_key_id[credential.access_key_id] = credential

    def __len__(self) -> int:
        return len(self._by_access_key_id)

    @classmethod
    def load(cls, path: Path, default_account_id: str) -> CredentialStore:
        """Read an INI file in the ``~/.aws/credentials`` format.

        Each ``[profile]`` needs ``aws_access_key_id`` and ``aws_secret_access_key``, and may
        have ``aws_session_token`` and ``aws_account_id`` (default ``default_account_id``).
        Other keys (``region``...) are ignored, so a real credentials file can be used.

        Raises :class:`ConfigurationError` with one line naming the file and, where there is
        one, the profile: unreadable or malformed file, no profiles, a missing or malformed
        field, an access key id used twice, or an account id that is not 12 digits. No
        message ever quotes a secret or a token.
        """
        if not _ACCOUNT_ID.fullmatch(default_account_id):
            raise ConfigurationError(
                f"default account id for credentials file {path} must be 12 digits, "
                f"got {default_account_id!r}"
            )
        parser = _read_ini(path)
        credentials: list[Credential] = []
        profile_by_access_key_id: dict[str, str] = {}
        for profile in parser.sections():
            credential = _credential_from_section(
                path, profile, parser[profile], default_account_id
            )
            earlier = profile_by_access_key_id.get(credential.access_key_id)
            if earlier is not None:
                raise ConfigurationError(
                    f"credentials file {path}, [{profile}]: aws_access_key_id "
                    f"{credential.access_key_id} is already used by [{earlier}]; "
                    "every access key id must be unique"
                )
            profile_by_access_key_id[credential.access_key_id] = profile
            credentials.append(credential)
        if not credentials:
            raise ConfigurationError(
                f"credentials file {path} defines no profiles: add a [name] section with "
                "aws_access_key_id and aws_secret_access_key"
            )
        return cls(credentials)

    def lookup(self, access_key_id: str) -> Credential | None:
        """The credential with this access key id, or None if there is none."""
        return self._by_access_key_id.get(access_key_id)


def _read_ini(path: Path) -> configparser.RawConfigParser:
    """Parse ``path`` as INI; every failure becomes a :class:`ConfigurationError`.

    Parser errors are reported by line number only: the offending line may hold a secret.
    """
    parser = configparser.RawConfigParser(default_section=_NO_DEFAULT_SECTION, strict=True)
    try:
        with path.open(encoding="utf-8") as stream:
            parser.read_file(stream, source=str(path))
    except OSError as error:
        raise ConfigurationError(
            f"cannot read credentials file {path}: {error.strerror or error}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigurationError(f"credentials file {path} is not UTF-8 text") from None
    except configparser.MissingSectionHeaderError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}: "
            "expected a [profile] header before the first setting"
        ) from None
    except configparser.DuplicateSectionError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}: profile [{error.section}] appears twice"
        ) from None
    except configparser.DuplicateOptionError as error:
        raise ConfigurationError(
            f"credentials file {path}, line {error.lineno}, [{error.section}]: "
            f"{error.option} is set twice"
        ) from None
    except configparser.ParsingError as error:
        lines = ", ".join(str(line_number) for line_number, _ in error.errors)
        raise ConfigurationError(
            f"credentials file {path}: line {lines} is not a [profile] header "
            "or a 'name = value' setting"
        ) from None
    return parser


def _credential_from_section(
    path: Path, profile: str, section: configparser.SectionProxy, default_account_id: str
) -> Credential:
    """Build one :class:`Credential`; raises :class:`ConfigurationError` naming the profile."""
    where = f"credentials file {path}, [{profile}]"
    if not _PROFILE_NAME.fullmatch(profile):
        raise ConfigurationError(
            f"{where}: the profile name becomes an IAM user name, so it may only use "
            "letters, digits and _+=,.@- (at most 64)"
        )
    missing = [
        name for name in ("aws_access_key_id", "aws_secret_access_key") if not section.get(name)
    ]
    if missing:
        raise ConfigurationError(f"{where}: missing {' and '.join(missing)}")
    access_key_id = section["aws_access_key_id"]
    if not _ACCESS_KEY_ID.fullmatch(access_key_id):
        raise ConfigurationError(
            f"{where}: aws_access_key_id may only use letters, digits and _.@+- "
            f"(at most 128), got {access_key_id!r}"
        )
    secret = section["aws_secret_access_key"]
    # An indented next line is an INI continuation and lands inside the value.
    if any(character.isspace() for character in secret):
        raise ConfigurationError(f"{where}: aws_secret_access_key contains whitespace")
    session_token = section.get("aws_session_token") or None
    if session_token is not None and any(character.isspace() for character in session_token):
        raise ConfigurationError(f"{where}: aws_session_token contains whitespace")
    account_id = section.get("aws_account_id") or default_account_id
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise ConfigurationError(f"{where}: aws_account_id must be 12 digits, got {account_id!r}")
    return Credential(
        profile=profile,
        access_key_id=access_key_id,
        secret_access_key=secret,
        account_id=account_id,
        session_token=session_token,
    )


class Authenticator:
    """Turns an HTTP request into a :class:`Caller`, or raises the AWS error for it."""

    def __init__(
        self,
        mode: str,
        default_region: str,
        default_account_id: str,
        credentials: CredentialStore | None = None,
    ) -> None:
        """Set up ``mode`` (``open`` or ``sigv4``).

        Raises :class:`ConfigurationError` for an unknown mode, ``sigv4`` without
        credentials, or a malformed default region or account id.
        """
        if mode not in AUTH_MODES:
            raise ConfigurationError(
                f"auth mode must be one of {', '.join(AUTH_MODES)}, got {mode!r}"
            )
        if mode == "sigv4" and credentials is None:
            raise ConfigurationError("auth mode sigv4 needs a credentials file")
        if not _is_region(default_region):
            raise ConfigurationError(
                f"default region must look like us-east-1, got {default_region!r}"
            )
        if not _ACCOUNT_ID.fullmatch(default_account_id):
            raise ConfigurationError(
                f"default account id must be 12 digits, got {default_account_id!r}"
            )
        self.mode = mode
        self._open_callers: dict[str, Caller] = {}
        self._signed_callers: dict[tuple[str, str], Caller] = {}
        self._default_region = default_region
        self._default_account_id = default_account_id
        self._credentials = credentials

    def authenticate(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: HeaderSource,
        body: bytes,
        now: datetime | None = None,
    ) -> Caller:
        """Authenticate one request and say who made it.

        ``path`` is the request path exactly as on the request line (still percent-encoded);
        ``query_string`` is the raw query without ``?``; ``now`` is the time signatures are
        checked against, timezone aware (default: the real time now). In ``open`` mode this
        never raises an AWS error. In ``sigv4`` mode it raises
        :class:`MissingAuthenticationTokenException`, :class:`IncompleteSignatureException`,
        :class:`InvalidSignatureException` or :class:`UnrecognizedClientException` with
        AWS's message, checked in AWS's order. Raises ``ValueError`` for a naive ``now``.
        """
        if now is not None and now.utcoffset() is None:
            raise ValueError("now must be a timezone-aware datetime")
        if self.mode == "open":
            return self._open_caller(headers)
        if now is None:
            now = datetime.now(UTC)
        if isinstance(headers, EnvironHeaders):
            headers = EnvironHeaderView(headers.environ)
        return self._verify(method, path, query_string, headers, body, now.astimezone(UTC))

    def _open_caller(self, headers: HeaderSource) -> Caller:
        """Read (never check) the access key and region from ``Authorization``."""
        authorization = headers.get("Authorization")
        match = _OPEN_CREDENTIAL.search(authorization) if authorization else None
        scope = match.group(1) if match else ""
        # A client sends the same credential scope (key id, date, region) on every request:
        # its caller is worked out once. Bounded, since the scope is whatever the client says.
        caller = self._open_callers.get(scope)
        if caller is None:
            if len(self._open_callers) >= _OPEN_CALLER_CACHE_LIMIT:
                self._open_callers.clear()
            caller = self._open_callers[scope] = self._caller_from_scope(scope)
        return caller

    def _caller_from_scope(self, scope: str) -> Caller:
        access_key_id: str | None = None
        region = self._default_region
        if scope:
            parts = scope.rstrip("/").split("/")
            access_key_id = parts[0] or None
            if len(parts) == 5 and _is_region(parts[2]):
                region = parts[2]
        account_id = self._default_account_id
        # As in LocalStack: a 12-digit access key id names the account, so one service can
        # host several accounts without any configuration.
        if access_key_id is not None and _ACCOUNT_ID.fullmatch(access_key_id):
            account_id = access_key_id
        return Caller(
            access_key_id=access_key_id,
            account_id=account_id,
            region=region,
            principal_arn=f"arn:aws:iam::{account_id}:root",
        )

    def _verify(
        self,
        method: str,
        path: str,
        query_string: str,
        headers: HeaderSource,
        body: bytes,
        now: datetime,
    ) -> Caller:
        """The ``sigv4`` mode: reference §2.2, in the check order of §2.4."""
        assert self._credentials is not None  # guaranteed by __init__
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
                "Authorization header requires existence of either a 'X-Amz-Date' or a "
                "'Date' header. "
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

        credential = self._credentials.lookup(access_key_id)
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
        caller = self._signed_callers.get((access_key_id, region))
        if caller is None:
            # One per credential and valid region: bounded by the credentials file.
            caller = self._signed_callers[(access_key_id, region)] = Caller(
                access_key_id=access_key_id,
                account_id=credential.account_id,
                region=region,
                principal_arn=credential.principal_arn,
            )
        return caller


@functools.lru_cache(maxsize=64)
def _is_region(value: str) -> bool:
    return len(value) <= _MAX_REGION_LENGTH and _REGION.fullmatch(value) is not None


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
    if not _is_region(region):
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
    """SigV4's canonical request (reference §2.2 step 5), built as botocore builds it."""
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
    """The path with dot segments and empty segments removed, then URI-encoded again.

    Encoding the already-encoded path is SigV4's double encoding for non-S3 services, and is
    exactly what botocore does (``quote(normalize_url_path(path), safe='/~')``).
    """
    segments: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if segments:
                segments.pop()
        elif segment and segment != ".":
            segments.append(segment)
    if not segments:
        return "/"
    normalised = "/" + "/".join(segments) if path.startswith("/") else "/".join(segments)
    if path.endswith("/"):
        normalised += "/"
    return quote(normalised, safe="/~")


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


@functools.lru_cache(maxsize=256)
def _keyed_hmac(secret_access_key: str, scope_date: str, region: str) -> hmac.HMAC:
    """An HMAC-SHA256 keyed with the scope's signing key, never updated: each request
    signs with a ``copy()``, which skips setting up the key."""
    return hmac.new(_signing_key(secret_access_key, scope_date, region), None, hashlib.sha256)


def _signing_key(secret_access_key: str, scope_date: str, region: str) -> bytes:
    """SigV4's derived key for (date, region, kms): four HMACs, cached by the caller."""
    key = f"AWS4{secret_access_key}".encode()
    for part in (scope_date, region, SERVICE, TERMINATOR):
        key = hmac.new(key, part.encode("utf-8"), hashlib.sha256).digest()
    return key
