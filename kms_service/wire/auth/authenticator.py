"""Who is calling: the account and region a request acts in, by one of two modes.

* ``open`` trusts every request, as LocalStack does. It only reads the access key and the
  region from the ``Authorization`` header, so that ARNs come out in the caller's region and
  a 12-digit access key id can stand for an account.
* ``sigv4`` verifies every request as AWS's front end does (:mod:`.sigv4`) against the access
  keys of a credentials file (:mod:`.credentials`), so a misconfigured client fails here
  exactly as it would against AWS KMS (docs/aws-behaviours.md, "Authentication").

The hot path does no I/O and no logging; callers are worked out once per credential scope.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime

from kms_service.access import Identity, make_identity
from kms_service.domain.errors import ConfigurationError
from kms_service.wire.auth import sigv4
from kms_service.wire.auth.credentials import CredentialStore, is_account_id
from kms_service.wire.auth.sigv4 import HeaderSource, is_region

AUTH_MODES = ("open", "sigv4")
#: WSGI environ key set (never from a header: those are all ``HTTP_*``) by the in-process
#: loopback listener through which mock-kms's S3 calls its KMS on a caller's behalf.
TRUSTED_LOOPBACK = "mock_kms.trusted_loopback"
#: User-Agent token by which S3 names itself on those calls: ``kms:ViaService``.
VIA_SERVICE_AGENT = "mock-kms-via-service/"
_VIA_SERVICE = re.compile(re.escape(VIA_SERVICE_AGENT) + r"([a-z0-9.-]+)")

_OPEN_CREDENTIAL = re.compile(r"Credential=([^,\s]*)")
_OPEN_CALLER_CACHE_LIMIT = 1024


@dataclass(frozen=True)
class Caller:
    """The authenticated caller of one request, and the identity authorisation sees."""

    access_key_id: str | None
    account_id: str
    region: str
    principal_arn: str
    identity: Identity


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
        if not is_region(default_region):
            raise ConfigurationError(
                f"default region must look like us-east-1, got {default_region!r}"
            )
        if not is_account_id(default_account_id):
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
        assert self._credentials is not None  # guaranteed by __init__ for sigv4
        credential, region = sigv4.verify(
            method, path, query_string, headers, body, now, self._credentials.lookup
        )
        # One per credential and valid region: bounded by the credentials file.
        key = (credential.access_key_id, region)
        caller = self._signed_callers.get(key)
        if caller is None:
            caller = self._signed_callers[key] = Caller(
                access_key_id=credential.access_key_id,
                account_id=credential.account_id,
                region=region,
                principal_arn=credential.principal_arn,
                identity=credential.identity(),
            )
        return caller

    def forwarded_caller(self, headers: HeaderSource) -> tuple[Caller, str | None]:
        """The caller an AWS service (mock-kms's S3, over the trusted loopback) acts for, and
        that service (``kms:ViaService``). The service has verified the caller already: the
        access key id and region are read as in ``open`` mode, never checked again."""
        agent = headers.get("User-Agent") or ""
        match = _VIA_SERVICE.search(agent)
        return self._open_caller(headers), (match.group(1) if match else None)

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
            if len(parts) == 5 and is_region(parts[2]):
                region = parts[2]
        # Open mode verifies nothing, but an access key id from the credentials file (when
        # one is given) takes that profile's identity, so tests can act as several
        # principals without signing.
        credential = (
            self._credentials.lookup(access_key_id)
            if self._credentials is not None and access_key_id is not None
            else None
        )
        if credential is not None:
            return Caller(
                access_key_id=access_key_id,
                account_id=credential.account_id,
                region=region,
                principal_arn=credential.principal_arn,
                identity=credential.identity(),
            )
        account_id = self._default_account_id
        # As in LocalStack: a 12-digit access key id names the account, so one service can
        # host several accounts without any configuration. Anyone else is that account's root.
        if access_key_id is not None and is_account_id(access_key_id):
            account_id = access_key_id
        root = f"arn:aws:iam::{account_id}:root"
        return Caller(
            access_key_id=access_key_id,
            account_id=account_id,
            region=region,
            principal_arn=root,
            identity=make_identity(root),
        )
