"""AWS Signature Version 4 for KMS requests, byte-identical to botocore's ``SigV4Auth``.

Only header signing is implemented (no presigned URLs, no unsigned payloads): that is all the
JSON protocol uses. The canonical URI follows botocore for non-S3 services: dot segments and
empty segments removed, then percent-encoded once more (so an already-encoded path is encoded
twice, as the SigV4 spec requires for every service but S3).

:func:`canonical_uri` and :func:`signing_key` are also the server's (mock-kms checks signatures
with them), so the two sides cannot drift apart; this module stays standard-library only.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import quote, urlsplit

ALGORITHM = "AWS4-HMAC-SHA256"
#: The last element of every credential scope.
TERMINATOR = "aws4_request"
TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


@dataclass(frozen=True)
class Credentials:
    """An access key pair, plus the session token of temporary credentials."""

    access_key_id: str
    secret_access_key: str = field(repr=False)
    session_token: str | None = field(default=None, repr=False)


def host_header(url: str) -> str:
    """The ``Host`` value botocore signs for ``url``: lowercase, port only if not the default."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = {"http": 80, "https": 443}.get(parts.scheme)
    if parts.port is not None and parts.port != default_port:
        host = f"{host}:{parts.port}"
    return host


def canonical_uri(path: str) -> str:
    """The SigV4 canonical URI for a request path as sent (still percent-encoded), exactly as
    botocore computes it: ``/`` when empty, dot and empty segments removed, encoded again."""
    if not path:
        return "/"
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    leading = "/" if path.startswith("/") else ""
    trailing = "/" if path.endswith("/") and segments else ""
    return quote(leading + "/".join(segments) + trailing, safe="/~")


def canonical_query(query: str) -> str:
    """Query pairs sorted by key then value, as botocore does for a query in the URL."""
    if not query:
        return ""
    pairs = [tuple(pair.partition("=")[::2]) for pair in query.split("&")]
    return "&".join(f"{key}={value}" for key, value in sorted(pairs))


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def signing_key(secret_access_key: str, date: str, region: str, service: str) -> bytes:
    """The derived key: HMAC chain over date (``YYYYMMDD``), region, service and
    ``aws4_request``. Never raises for well-formed strings."""
    key = _hmac(f"AWS4{secret_access_key}".encode(), date)
    for part in (region, service, TERMINATOR):
        key = _hmac(key, part)
    return key


def sign_request(
    *,
    method: str,
    url: str,
    headers: Mapping[str, str],
    body: bytes,
    credentials: Credentials,
    region: str,
    service: str = "kms",
    now: datetime | None = None,
) -> dict[str, str]:
    """Sign a request and return its complete header set.

    Every header in ``headers`` is signed, plus ``Host`` (derived from ``url`` when absent),
    ``X-Amz-Date`` (from ``now``, default the current UTC time) and, with a session token,
    ``X-Amz-Security-Token``. Pass only the headers that should be signed; add unsigned ones
    (``User-Agent``, ``amz-sdk-*``) to the result afterwards. The result holds the given
    headers, the added ones and ``Authorization``. Never raises for well-formed strings.
    """
    moment = (now or datetime.now(UTC)).astimezone(UTC)
    amz_date = moment.strftime(TIMESTAMP_FORMAT)
    signed: dict[str, str] = {
        name: value
        for name, value in headers.items()
        if name.lower() not in ("authorization", "x-amz-date", "x-amz-security-token")
    }
    if not any(name.lower() == "host" for name in signed):
        signed["Host"] = host_header(url)
    signed["X-Amz-Date"] = amz_date
    if credentials.session_token:
        signed["X-Amz-Security-Token"] = credentials.session_token

    # Header values are trimmed and inner whitespace runs collapsed ("Trimall" in the spec).
    canonical = {name.lower(): " ".join(value.split()) for name, value in signed.items()}
    names = sorted(canonical)
    signed_headers = ";".join(names)
    parts = urlsplit(url)
    canonical_request = "\n".join(
        [
            method.upper(),
            canonical_uri(parts.path),
            canonical_query(parts.query),
            "".join(f"{name}:{canonical[name]}\n" for name in names),
            signed_headers,
            hashlib.sha256(body).hexdigest(),
        ]
    )
    scope = f"{amz_date[:8]}/{region}/{service}/{TERMINATOR}"
    string_to_sign = "\n".join(
        [
            ALGORITHM,
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode("utf-8")).hexdigest(),
        ]
    )
    key = signing_key(credentials.secret_access_key, amz_date[:8], region, service)
    signature = hmac.new(key, string_to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
    signed["Authorization"] = (
        f"{ALGORITHM} Credential={credentials.access_key_id}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )
    return signed
