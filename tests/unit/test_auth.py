"""SigV4 authentication, checked against requests signed by botocore's real signer.

Every request here is signed by ``botocore.auth.SigV4Auth`` (or by a real boto3 client) and
handed to :class:`Authenticator` as the wire layer would: method, raw path, raw query, a
werkzeug ``Headers`` with what the HTTP client puts on the wire, and the body. Only the
signer's clock is pinned, so that AWS's date-bearing messages can be compared verbatim.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
import botocore.auth
import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSPreparedRequest, AWSRequest
from botocore.credentials import Credentials
from hypothesis import given
from hypothesis import strategies as st
from werkzeug.datastructures import EnvironHeaders, Headers

from kms_service.access import make_identity
from kms_service.domain.errors import (
    ConfigurationError,
    IncompleteSignatureException,
    InvalidSignatureException,
    KmsError,
    MissingAuthenticationTokenException,
    UnrecognizedClientException,
)
from kms_service.wire.auth.authenticator import Authenticator, Caller
from kms_service.wire.auth.credentials import Credential, CredentialStore
from kms_service.wire.auth.sigv4 import (
    EnvironHeaderView,
    _parse_authorization,
    _signed_header_values,
)

SIGNED_AT = datetime(2024, 8, 20, 23, 1, 43, tzinfo=UTC)
AMZ_DATE = "20240820T230143Z"
ENDPOINT = "http://localhost:4599/"
REGION = "eu-west-3"
DEFAULT_ACCOUNT = "111122223333"
BODY = b'{"KeyId": "alias/app", "Plaintext": "aGVsbG8="}'

ALICE_KEY, ALICE_SECRET, ALICE_ACCOUNT = "AKIDALICE0000001", "alice/Secret+Key0", "444455556666"
BOB_KEY, BOB_SECRET, BOB_TOKEN = "ASIABOB000000001", "bob-secret", "FwoGZXIvYXdzEJr//bob+token="

CREDENTIALS_FILE = f"""\
[alice]
aws_access_key_id = {ALICE_KEY}
aws_secret_access_key = {ALICE_SECRET}
aws_account_id = {ALICE_ACCOUNT}
region = us-west-2

[bob]
aws_access_key_id = {BOB_KEY}
aws_secret_access_key = {BOB_SECRET}
aws_session_token = {BOB_TOKEN}
"""

MISMATCH_TEXT = (
    "The request signature we calculated does not match the signature you provided. "
    "Check your AWS Secret Access Key and signing method. "
    "Consult the service documentation for details."
)


# --- helpers ------------------------------------------------------------------------------
class RecordingSigV4Auth(SigV4Auth):
    """botocore's signer, unchanged, remembering what it signed."""

    canonical: str = ""
    string_to_sign_text: str = ""

    def canonical_request(self, request: Any) -> str:
        self.canonical = str(super().canonical_request(request))
        return self.canonical

    def string_to_sign(self, request: Any, canonical_request: str) -> str:
        self.string_to_sign_text = str(super().string_to_sign(request, canonical_request))
        return self.string_to_sign_text


@dataclass(frozen=True)
class WireRequest:
    """A request as the wire layer sees it."""

    method: str
    path: str
    query_string: str
    headers: Headers
    body: bytes
    canonical: str = ""
    string_to_sign: str = ""

    @property
    def authorization(self) -> str:
        return str(self.headers["Authorization"])

    def with_header(self, name: str, value: str | None) -> WireRequest:
        headers = Headers(self.headers)
        if value is None:
            headers.remove(name)
        else:
            headers.set(name, value)
        return replace(self, headers=headers)

    def with_authorization(self, old: str, new: str) -> WireRequest:
        assert old in self.authorization, f"{old!r} not in {self.authorization!r}"
        return self.with_header("Authorization", self.authorization.replace(old, new, 1))


def on_the_wire(prepared: AWSPreparedRequest) -> Headers:
    """The headers the server receives: the signed ones plus what the HTTP client adds."""
    headers = Headers()
    headers.add("Host", urlsplit(prepared.url).netloc)
    for name, value in prepared.headers.items():
        # A WSGI server hands header values over as latin-1 decoded text.
        headers.add(name, value.decode("latin-1") if isinstance(value, bytes) else value)
    if "Content-Length" not in headers:
        headers.add("Content-Length", str(len(prepared.body or b"")))
    return headers


def sign(
    *,
    access_key: str = ALICE_KEY,
    secret: str = ALICE_SECRET,
    token: str | None = None,
    region: str = REGION,
    service: str = "kms",
    url: str = ENDPOINT,
    body: bytes = BODY,
    target: str = "TrentService.Encrypt",
    extra_headers: dict[str, str] | None = None,
    context: dict[str, Any] | None = None,
    at: datetime = SIGNED_AT,
) -> WireRequest:
    """Sign a KMS request with botocore's SigV4Auth exactly as boto3 does, at time ``at``."""
    headers = {
        "X-Amz-Target": target,
        "Content-Type": "application/x-amz-json-1.1",
        "User-Agent": "Boto3/1.40.0 md/Botocore#1.40.0",
        **(extra_headers or {}),
    }
    request = AWSRequest(method="POST", url=url, data=body, headers=headers)
    request.context.update(context or {})
    signer = RecordingSigV4Auth(Credentials(access_key, secret, token), service, region)
    with mock.patch.object(
        botocore.auth, "get_current_datetime", return_value=at.replace(tzinfo=None)
    ):
        signer.add_auth(request)
    prepared = request.prepare()
    parts = urlsplit(prepared.url)
    return WireRequest(
        method=prepared.method,
        path=parts.path,
        query_string=parts.query,
        headers=on_the_wire(prepared),
        body=prepared.body or b"",
        canonical=signer.canonical,
        string_to_sign=signer.string_to_sign_text,
    )


def authenticate(
    authenticator: Authenticator, request: WireRequest, now: datetime = SIGNED_AT
) -> Caller:
    return authenticator.authenticate(
        request.method, request.path, request.query_string, request.headers, request.body, now
    )


def rejects(
    authenticator: Authenticator, request: WireRequest, now: datetime = SIGNED_AT
) -> KmsError:
    """The AWS error the request is refused with; fails the test if it is accepted."""
    with pytest.raises(KmsError) as caught:
        authenticate(authenticator, request, now)
    return caught.value


@pytest.fixture()
def credentials_path(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text(CREDENTIALS_FILE, encoding="utf-8")
    return path


@pytest.fixture()
def store(credentials_path: Path) -> CredentialStore:
    return CredentialStore.load(credentials_path, DEFAULT_ACCOUNT)


@pytest.fixture()
def sigv4(store: CredentialStore) -> Authenticator:
    return Authenticator("sigv4", "us-east-1", DEFAULT_ACCOUNT, store)


@pytest.fixture()
def open_mode() -> Authenticator:
    return Authenticator("open", "us-east-1", DEFAULT_ACCOUNT)


# --- accepted requests ----------------------------------------------------------------------
def test_valid_signature_gives_the_profile_account_and_scope_region(sigv4: Authenticator) -> None:
    caller = authenticate(sigv4, sign())

    assert caller == Caller(
        access_key_id=ALICE_KEY,
        account_id=ALICE_ACCOUNT,
        region=REGION,
        principal_arn=f"arn:aws:iam::{ALICE_ACCOUNT}:user/alice",
        identity=make_identity(f"arn:aws:iam::{ALICE_ACCOUNT}:user/alice"),
    )


def test_session_token_credentials_are_accepted_with_the_default_account(
    sigv4: Authenticator,
) -> None:
    request = sign(access_key=BOB_KEY, secret=BOB_SECRET, token=BOB_TOKEN, region="ap-south-2")
    assert "x-amz-security-token" in request.authorization

    caller = authenticate(sigv4, request)

    bob = f"arn:aws:iam::{DEFAULT_ACCOUNT}:user/bob"
    assert caller == Caller(BOB_KEY, DEFAULT_ACCOUNT, "ap-south-2", bob, make_identity(bob))


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:4599/kms/v1",
        "http://localhost:4599/kms/v1/",
        "http://localhost:4599/kms//v1/./extra/../",
        "http://localhost:4599/kms/a%20b~c",
        "https://kms.internal.example/",
    ],
)
def test_endpoint_paths_are_canonicalised_as_botocore_does(sigv4: Authenticator, url: str) -> None:
    request = sign(url=url)
    assert request.path == urlsplit(url).path

    assert authenticate(sigv4, request).account_id == ALICE_ACCOUNT


def test_query_string_is_canonicalised_sorted_and_encoded(sigv4: Authenticator) -> None:
    request = sign(url="http://localhost:4599/?b=2&a=1&c=x%20y&a=0")
    assert request.canonical.split("\n")[2] == "a=0&a=1&b=2&c=x%20y"

    assert authenticate(sigv4, request).region == REGION


def test_extra_signed_headers_are_verified_with_whitespace_collapsed(sigv4: Authenticator) -> None:
    request = sign(extra_headers={"X-Amz-Meta-Note": "  two   spaces\tand tab ", "Accept": "*/*"})
    assert "SignedHeaders=accept;content-type;host;x-amz-date;x-amz-meta-note;x-amz-target" in (
        request.authorization
    )

    assert authenticate(sigv4, request).access_key_id == ALICE_KEY


def test_date_header_is_accepted_instead_of_x_amz_date(sigv4: Authenticator) -> None:
    # botocore signs with an RFC 1123 Date header when the request already carries one.
    request = sign(extra_headers={"Date": "placeholder"})
    assert "X-Amz-Date" not in request.headers
    assert request.headers["Date"] == "Tue, 20 Aug 2024 23:01:43 -0000"

    assert authenticate(sigv4, request).account_id == ALICE_ACCOUNT


def test_unsigned_payload_declared_by_the_client_is_honoured(sigv4: Authenticator) -> None:
    request = sign(url="https://localhost:4599/", context={"payload_signing_enabled": False})
    assert request.headers["X-Amz-Content-SHA256"] == "UNSIGNED-PAYLOAD"

    assert authenticate(sigv4, replace(request, body=b"{}")).account_id == ALICE_ACCOUNT


def test_a_real_boto3_client_is_accepted(sigv4: Authenticator) -> None:
    # The request is captured just before it would leave the client, as sent.
    class Captured(Exception):
        pass

    sent: list[AWSPreparedRequest] = []

    def capture(request: AWSPreparedRequest, **_: Any) -> None:
        sent.append(request)
        raise Captured

    client = boto3.client(
        "kms",
        endpoint_url="http://127.0.0.1:4599/kms/v1",
        region_name="sa-east-1",
        aws_access_key_id=BOB_KEY,
        aws_secret_access_key=BOB_SECRET,
        aws_session_token=BOB_TOKEN,
    )
    client.meta.events.register("before-send.kms.ListKeys", capture)
    with pytest.raises(Captured):
        client.list_keys(Limit=5)
    prepared = sent[0]
    parts = urlsplit(prepared.url)

    caller = sigv4.authenticate(
        prepared.method,
        parts.path,
        parts.query,
        on_the_wire(prepared),
        prepared.body,
        datetime.now(UTC),
    )

    assert parts.path == "/kms/v1"
    assert (caller.access_key_id, caller.region) == (BOB_KEY, "sa-east-1")


# --- clock skew -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "offset",
    [timedelta(minutes=4, seconds=59), -timedelta(minutes=4, seconds=59), timedelta(minutes=5)],
)
def test_clock_skew_within_five_minutes_is_accepted(
    sigv4: Authenticator, offset: timedelta
) -> None:
    assert authenticate(sigv4, sign(), now=SIGNED_AT + offset).region == REGION


def test_signature_older_than_five_minutes_is_expired(sigv4: Authenticator) -> None:
    error = rejects(sigv4, sign(), now=SIGNED_AT + timedelta(minutes=5, seconds=1))

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Signature expired: 20240820T230143Z is now earlier than 20240820T230144Z "
        "(20240820T230644Z - 5 min.)"
    )


def test_signature_from_more_than_five_minutes_ahead_is_not_yet_current(
    sigv4: Authenticator,
) -> None:
    error = rejects(sigv4, sign(), now=SIGNED_AT - timedelta(minutes=5, seconds=1))

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Signature not yet current: 20240820T230143Z is still later than 20240820T230142Z "
        "(20240820T225642Z + 5 min.)"
    )


def test_now_must_be_timezone_aware(sigv4: Authenticator) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        authenticate(sigv4, sign(), now=SIGNED_AT.replace(tzinfo=None))


# --- wrong signatures -------------------------------------------------------------------------
def test_wrong_secret_explains_the_canonical_request_without_any_secret(
    sigv4: Authenticator,
) -> None:
    request = sign(secret="not-alices-secret")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    # The canonical request does not depend on the secret, so botocore's is the one expected.
    assert error.message == (
        f"{MISMATCH_TEXT}\n\nThe Canonical String for this request should have been\n"
        f"'{request.canonical}'\n\nThe String-to-Sign should have been\n"
        f"'{request.string_to_sign}'\n"
    )
    assert request.canonical.startswith("POST\n/\n\ncontent-type:application/x-amz-json-1.1\n")
    assert ALICE_SECRET not in error.message
    assert "not-alices-secret" not in error.message


def test_tampered_body_is_rejected(sigv4: Authenticator) -> None:
    tampered = b'{"KeyId": "alias/other", "Plaintext": "aGVsbG8="}'
    request = replace(sign(), body=tampered)

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message is not None
    assert error.message.startswith(MISMATCH_TEXT + "\n\n")
    assert f"\n{hashlib.sha256(tampered).hexdigest()}'\n\n" in error.message


@pytest.mark.parametrize("size", [0, 2046, 2047, 2048, 6000, 64 * 1024 - 1, 64 * 1024, 200_000])
def test_bodies_of_every_size_verify_and_a_changed_last_byte_is_caught(
    sigv4: Authenticator, size: int
) -> None:
    # Bodies under 64 KiB are hashed in 2047-byte pieces (to keep the GIL), larger ones at
    # once: the boundaries of both must give botocore's hash.
    body = bytes(index % 251 for index in range(size))
    request = sign(body=body)

    assert authenticate(sigv4, request).account_id == ALICE_ACCOUNT
    if size:
        changed = body[:-1] + bytes([(body[-1] + 1) % 256])
        assert isinstance(rejects(sigv4, replace(request, body=changed)), InvalidSignatureException)


def test_declared_body_hash_does_not_replace_the_real_one(sigv4: Authenticator) -> None:
    # botocore signs a declared X-Amz-Content-SHA256 as is; the body must still match it.
    declared = hashlib.sha256(b"some other body").hexdigest()
    request = sign(extra_headers={"X-Amz-Content-SHA256": declared})
    assert request.canonical.endswith("\n" + declared)

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message is not None
    assert error.message.startswith(MISMATCH_TEXT)
    assert f"\n{hashlib.sha256(BODY).hexdigest()}'\n\n" in error.message


def test_tampered_signed_header_is_rejected(sigv4: Authenticator) -> None:
    request = sign().with_header("X-Amz-Target", "TrentService.ScheduleKeyDeletion")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message is not None
    assert error.message.startswith(MISMATCH_TEXT)
    assert "\nx-amz-target:TrentService.ScheduleKeyDeletion\n" in error.message


# --- identity ---------------------------------------------------------------------------------
def test_unknown_access_key_is_unrecognized(sigv4: Authenticator) -> None:
    error = rejects(sigv4, sign(access_key="AKIDNOBODY000000"))

    assert isinstance(error, UnrecognizedClientException)
    assert error.message == "The security token included in the request is invalid."


@pytest.mark.parametrize(
    ("access_key", "secret", "token"),
    [
        pytest.param(BOB_KEY, BOB_SECRET, "FwoGZXIvYXdzEJr//someone+else=", id="wrong-token"),
        pytest.param(BOB_KEY, BOB_SECRET, None, id="token-missing"),
        pytest.param(ALICE_KEY, ALICE_SECRET, "unexpected-token", id="token-not-expected"),
    ],
)
def test_session_token_must_match_the_credential(
    sigv4: Authenticator, access_key: str, secret: str, token: str | None
) -> None:
    error = rejects(sigv4, sign(access_key=access_key, secret=secret, token=token))

    assert isinstance(error, UnrecognizedClientException)
    assert error.message == "The security token included in the request is invalid"


# --- malformed authentication -----------------------------------------------------------------
@pytest.mark.parametrize("authorization", [None, "", "Bearer abc.def", "Basic YWxpY2U6cHc="])
def test_missing_or_non_aws_authorization_is_a_missing_token(
    sigv4: Authenticator, authorization: str | None
) -> None:
    error = rejects(sigv4, sign().with_header("Authorization", authorization))

    assert isinstance(error, MissingAuthenticationTokenException)
    assert error.message == "Request is missing Authentication Token"


def test_missing_signature_part_is_incomplete(sigv4: Authenticator) -> None:
    request = sign()
    without = re.sub(r", Signature=[0-9a-f]{64}$", "", request.authorization)
    request = request.with_header("Authorization", without)

    error = rejects(sigv4, request)

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        f"Authorization header requires 'Signature' parameter. Authorization={without}"
    )


def test_missing_credential_and_dates_are_listed_together(sigv4: Authenticator) -> None:
    request = sign().with_header("X-Amz-Date", None)
    without = re.sub(r"Credential=[^,]+, ", "", request.authorization)
    request = request.with_header("Authorization", without)

    error = rejects(sigv4, request)

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        "Authorization header requires 'Credential' parameter. "
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. "
        f"Authorization={without}"
    )


def test_parameter_without_equals_sign_is_incomplete(sigv4: Authenticator) -> None:
    header = "AWS4-HMAC-SHA256 Credential, SignedHeaders=host, Signature=abc"
    error = rejects(sigv4, sign().with_header("Authorization", header))

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        "'Credential' not a valid key=value pair (missing equal-sign) in Authorization header: "
        f"'{header}'."
    )


@pytest.mark.parametrize(
    "bad_date", ["2024-08-20T23:01:43Z", "20240820T230143", "20241320T230143Z"]
)
def test_bad_date_format_is_incomplete(sigv4: Authenticator, bad_date: str) -> None:
    error = rejects(sigv4, sign().with_header("X-Amz-Date", bad_date))

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        f"Date must be in ISO-8601 'basic format'. Got '{bad_date}'. "
        "See http://en.wikipedia.org/wiki/ISO_8601"
    )


def test_host_must_be_signed(sigv4: Authenticator) -> None:
    request = sign().with_authorization(";host;", ";")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message == "'Host' must be a 'SignedHeader' in the AWS Authorization."


def test_unsupported_algorithm_is_incomplete(sigv4: Authenticator) -> None:
    request = sign().with_authorization("AWS4-HMAC-SHA256 ", "AWS4-HMAC-SHA25 ")

    error = rejects(sigv4, request)

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        "Unsupported AWS 'algorithm': 'AWS4-HMAC-SHA25' (only AWS4-HMAC-SHA256 for now). "
    )


def test_four_part_credential_is_incomplete(sigv4: Authenticator) -> None:
    request = sign().with_authorization("/kms/aws4_request,", "/kms,")

    error = rejects(sigv4, request)

    assert isinstance(error, IncompleteSignatureException)
    assert error.message == (
        "Credential must have exactly 5 slash-delimited elements, "
        f"e.g. keyid/date/region/service/term, got '{ALICE_KEY}/20240820/{REGION}/kms'"
    )


def test_trailing_slash_in_credential_is_ignored(sigv4: Authenticator) -> None:
    # The signature does not cover the Authorization header, so this is still a valid request.
    request = sign().with_authorization("/aws4_request,", "/aws4_request/,")

    assert authenticate(sigv4, request).account_id == ALICE_ACCOUNT


def test_credential_for_another_service_is_rejected(sigv4: Authenticator) -> None:
    error = rejects(sigv4, sign(service="s3"))

    assert isinstance(error, InvalidSignatureException)
    assert error.message == "Credential should be scoped to correct service: 'kms'. "


def test_wrong_terminator_is_rejected(sigv4: Authenticator) -> None:
    request = sign().with_authorization("/aws4_request,", "/aws4_reqest,")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Credential should be scoped with a valid terminator: 'aws4_request', not 'aws4_reqest'. "
    )


def test_scope_date_must_match_the_request_date(sigv4: Authenticator) -> None:
    request = sign().with_authorization("/20240820/", "/20240819/")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from "
        "HTTP: '20240819' != '20240820', from '20240820T230143Z'."
    )


def test_every_wrong_scope_part_is_reported_at_once(sigv4: Authenticator) -> None:
    error = rejects(sigv4, sign(region="EU_WEST_3", service="s3"))

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Credential should be scoped to a valid region, not 'EU_WEST_3'. "
        "Credential should be scoped to correct service: 'kms'. "
    )


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(
            lambda r: r.with_authorization(ALICE_KEY, "AKIDNOBODY000000"), id="before-access-key"
        ),
        pytest.param(lambda r: r.with_authorization(";host;", ";"), id="before-host"),
    ],
)
def test_clock_is_checked_before_host_and_identity(sigv4: Authenticator, change: Any) -> None:
    error = rejects(sigv4, change(sign()), now=SIGNED_AT + timedelta(hours=1))

    assert isinstance(error, InvalidSignatureException)
    assert error.message == (
        "Signature expired: 20240820T230143Z is now earlier than 20240820T235643Z "
        "(20240821T000143Z - 5 min.)"
    )


@pytest.mark.parametrize(
    ("change", "expected_type", "expected_message"),
    [
        pytest.param(
            lambda r: r.with_authorization(";host;", ";").with_authorization(
                "AWS4-HMAC-SHA256 ", "AWS4-ECDSA-P256-SHA256 "
            ),
            InvalidSignatureException,
            "'Host' must be a 'SignedHeader' in the AWS Authorization.",
            id="host-before-algorithm",
        ),
        pytest.param(
            lambda r: r.with_authorization("AWS4-HMAC-SHA256 ", "AWS4-X ").with_authorization(
                "/kms/aws4_request,", "/kms,"
            ),
            IncompleteSignatureException,
            "Unsupported AWS 'algorithm': 'AWS4-X' (only AWS4-HMAC-SHA256 for now). ",
            id="algorithm-before-credential",
        ),
        pytest.param(
            lambda r: r.with_authorization(ALICE_KEY, "AKIDNOBODY000000").with_authorization(
                "/kms/", "/s3/"
            ),
            InvalidSignatureException,
            "Credential should be scoped to correct service: 'kms'. ",
            id="scope-before-access-key",
        ),
    ],
)
def test_checks_run_in_aws_order(
    sigv4: Authenticator, change: Any, expected_type: type[KmsError], expected_message: str
) -> None:
    error = rejects(sigv4, change(sign()))

    assert isinstance(error, expected_type)
    assert error.message == expected_message


def test_signature_is_checked_before_the_session_token(sigv4: Authenticator) -> None:
    request = sign(access_key=BOB_KEY, secret="wrong", token="wrong-token")

    error = rejects(sigv4, request)

    assert isinstance(error, InvalidSignatureException)
    assert error.message is not None
    assert error.message.startswith(MISMATCH_TEXT)


# --- open mode --------------------------------------------------------------------------------
def test_open_mode_twelve_digit_key_is_the_account(open_mode: Authenticator) -> None:
    caller = authenticate(open_mode, sign(access_key="000000000042", secret="anything"))

    root = "arn:aws:iam::000000000042:root"
    assert caller == Caller("000000000042", "000000000042", REGION, root, make_identity(root))


def test_open_mode_other_keys_use_the_default_account_and_nothing_is_verified(
    open_mode: Authenticator,
) -> None:
    request = replace(sign(access_key="test", secret="test", region="ca-west-1"), body=b"changed")

    caller = authenticate(open_mode, request, now=SIGNED_AT + timedelta(days=30))

    root = f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"
    assert caller == Caller("test", DEFAULT_ACCOUNT, "ca-west-1", root, make_identity(root))


@pytest.mark.parametrize("authorization", [None, "Bearer abc", "AWS4-HMAC-SHA256 Credential=k/d/c"])
def test_open_mode_without_a_usable_scope_uses_the_defaults(
    open_mode: Authenticator, authorization: str | None
) -> None:
    caller = authenticate(open_mode, sign().with_header("Authorization", authorization))

    assert caller.region == "us-east-1"
    assert caller.account_id == DEFAULT_ACCOUNT
    assert caller.principal_arn == f"arn:aws:iam::{DEFAULT_ACCOUNT}:root"


def test_open_mode_ignores_a_malformed_region(open_mode: Authenticator) -> None:
    caller = authenticate(open_mode, sign(access_key="123456789012", region="Not A Region"))

    assert (caller.region, caller.account_id) == ("us-east-1", "123456789012")


def test_open_mode_without_authorization_has_no_access_key(open_mode: Authenticator) -> None:
    caller = authenticate(open_mode, sign().with_header("Authorization", None))

    assert caller.access_key_id is None


def test_open_mode_callers_are_remembered_per_scope_never_mixed(open_mode: Authenticator) -> None:
    # Each scope answered twice (the second time from the per-scope memory), in an order
    # that would expose a caller handed to the wrong scope.
    scopes = [("000000000001", "eu-west-1"), ("000000000002", "us-west-2"), ("test", "ap-south-1")]
    for _ in range(2):
        for key, region in scopes:
            caller = authenticate(open_mode, sign(access_key=key, secret="x", region=region))
            assert (caller.access_key_id, caller.region) == (key, region)
            assert caller.account_id == (key if key.isdigit() else DEFAULT_ACCOUNT)


def test_open_mode_memory_of_scopes_is_bounded(open_mode: Authenticator) -> None:
    for index in range(3000):
        request = sign().with_header(
            "Authorization", f"AWS4-HMAC-SHA256 Credential={index:012d}/20260101/us-east-1/kms/x"
        )
        assert authenticate(open_mode, request).account_id == f"{index:012d}"
    assert len(open_mode._open_callers) <= 1024


# --- configuration ----------------------------------------------------------------------------
def test_credentials_file_is_loaded(store: CredentialStore) -> None:
    alice = store.lookup(ALICE_KEY)
    bob = store.lookup(BOB_KEY)

    assert len(store) == 2
    assert alice == Credential("alice", ALICE_KEY, ALICE_SECRET, ALICE_ACCOUNT, None)
    assert bob == Credential("bob", BOB_KEY, BOB_SECRET, DEFAULT_ACCOUNT, BOB_TOKEN)
    assert store.lookup("AKIDNOBODY000000") is None
    assert ALICE_SECRET not in repr(alice)
    assert BOB_TOKEN not in repr(bob)


CONFIG_ERRORS = [
    pytest.param(
        f"aws_secret_access_key = {ALICE_SECRET}\n[a]\n",
        "credentials file {path}, line 1: expected a [profile] header before the first setting",
        id="no-section-header",
    ),
    pytest.param(
        f"[a]\naws_access_key_id = AK\n{ALICE_SECRET}\n",
        "credentials file {path}: line 3 is not a [profile] header or a 'name = value' setting",
        id="not-ini",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK\n",
        "credentials file {path}, [a]: missing aws_secret_access_key",
        id="missing-secret",
    ),
    pytest.param(
        "[a]\nregion = us-east-1\n",
        "credentials file {path}, [a]: missing aws_access_key_id and aws_secret_access_key",
        id="missing-both",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK\naws_secret_access_key = s1\n"
        "[b]\naws_access_key_id = AK\naws_secret_access_key = s2\n",
        "credentials file {path}, [b]: aws_access_key_id AK is already used by [a]; "
        "every access key id must be unique",
        id="duplicate-access-key",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK\naws_secret_access_key = s\naws_account_id = 12345\n",
        "credentials file {path}, [a]: aws_account_id must be 12 digits, got '12345'",
        id="short-account",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK\naws_secret_access_key = s\n[a]\n",
        "credentials file {path}, line 4: profile [a] appears twice",
        id="duplicate-profile",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK\naws_access_key_id = AK2\n",
        "credentials file {path}, line 3, [a]: aws_access_key_id is set twice",
        id="duplicate-setting",
    ),
    pytest.param(
        "# nothing here\n",
        "credentials file {path} defines no profiles: add a [name] section with "
        "aws_access_key_id and aws_secret_access_key",
        id="empty",
    ),
    pytest.param(
        "[my profile]\naws_access_key_id = AK\naws_secret_access_key = s\n",
        "credentials file {path}, [my profile]: the profile name becomes an IAM user name, "
        "so it may only use letters, digits and _+=,.@- (at most 64)",
        id="profile-name",
    ),
    pytest.param(
        "[a]\naws_access_key_id = AK/1\naws_secret_access_key = s\n",
        "credentials file {path}, [a]: aws_access_key_id may only use letters, digits and "
        "_.@+- (at most 128), got 'AK/1'",
        id="access-key-characters",
    ),
    pytest.param(
        f"[a]\naws_access_key_id = AK\naws_secret_access_key = {ALICE_SECRET}\n  continued\n",
        "credentials file {path}, [a]: aws_secret_access_key contains whitespace",
        id="secret-continuation-line",
    ),
]


@pytest.mark.parametrize(("content", "expected"), CONFIG_ERRORS)
def test_credentials_file_errors_name_the_file_and_profile(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "credentials"
    path.write_text(content, encoding="utf-8")

    with pytest.raises(ConfigurationError) as caught:
        CredentialStore.load(path, DEFAULT_ACCOUNT)

    assert str(caught.value) == expected.format(path=path)
    assert ALICE_SECRET not in str(caught.value)


def test_missing_credentials_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "absent"

    with pytest.raises(ConfigurationError) as caught:
        CredentialStore.load(path, DEFAULT_ACCOUNT)

    assert str(caught.value) == f"cannot read credentials file {path}: No such file or directory"


def test_non_utf8_credentials_file_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_bytes(b"[a]\naws_access_key_id = \xff\xfe\n")

    with pytest.raises(ConfigurationError) as caught:
        CredentialStore.load(path, DEFAULT_ACCOUNT)

    assert str(caught.value) == f"credentials file {path} is not UTF-8 text"


@pytest.mark.parametrize(
    ("mode", "credentials", "region", "account", "expected"),
    [
        (
            "anonymous",
            None,
            "us-east-1",
            DEFAULT_ACCOUNT,
            "auth mode must be one of open, sigv4, got 'anonymous'",
        ),
        ("sigv4", None, "us-east-1", DEFAULT_ACCOUNT, "auth mode sigv4 needs a credentials file"),
        (
            "open",
            None,
            "US East",
            DEFAULT_ACCOUNT,
            "default region must look like us-east-1, got 'US East'",
        ),
        ("open", None, "us-east-1", "1234", "default account id must be 12 digits, got '1234'"),
    ],
)
def test_authenticator_configuration_errors(
    mode: str, credentials: CredentialStore | None, region: str, account: str, expected: str
) -> None:
    with pytest.raises(ConfigurationError) as caught:
        Authenticator(mode, region, account, credentials)

    assert str(caught.value) == expected


# --- reading signed headers from the WSGI environ ------------------------------------------
_HEADER_NAMES = st.sampled_from(
    [
        "host",
        "x-amz-date",
        "content-type",
        "content-length",
        "x-amz-target",
        "x_amz_x",
        "X-Amz-Date",
    ]
)
_ENVIRON_KEYS = st.sampled_from(
    [
        "HTTP_HOST",
        "HTTP_X_AMZ_DATE",
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "HTTP_CONTENT_TYPE",
        "HTTP_X_AMZ_TARGET",
        "HTTP_X_AMZ_X",
        "REQUEST_METHOD",
    ]
)


@given(
    environ=st.dictionaries(_ENVIRON_KEYS, st.sampled_from(["", "a", "b, c", " d "])),
    names=st.lists(_HEADER_NAMES, max_size=6),
)
def test_the_environ_view_answers_as_werkzeug_environ_headers(
    environ: dict[str, str], names: list[str]
) -> None:
    werkzeug_headers = EnvironHeaders(environ)
    view = EnvironHeaderView(environ)
    for name in names:
        assert view.getlist(name) == werkzeug_headers.getlist(name)
        if "_" not in name:  # werkzeug's get() maps "_" to an environ key its iteration hides
            assert view.get(name) == werkzeug_headers.get(name)
    lowered = [name.lower() for name in names]
    assert _signed_header_values(view, lowered) == _signed_header_values(werkzeug_headers, lowered)


_AUTH_VALUE = st.text(
    alphabet=st.characters(codec="ascii", exclude_characters=", \t\r\n\x0b\x0c"), min_size=1
)


@given(credential=_AUTH_VALUE, signed_headers=_AUTH_VALUE, signature=_AUTH_VALUE)
def test_the_sdk_authorization_shape_parses_as_the_general_parser_does(
    credential: str, signed_headers: str, signature: str
) -> None:
    header = (
        f"AWS4-HMAC-SHA256 Credential={credential}, SignedHeaders={signed_headers}, "
        f"Signature={signature}"
    )
    # Surrounding spaces keep the header off the one-match path, through the general parser.
    assert _parse_authorization(header) == _parse_authorization(f"  {header} ")
