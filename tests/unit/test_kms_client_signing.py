"""The SigV4 signer must produce exactly botocore's signatures (botocore is a test dependency
only; the client never imports it)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta, timezone

import botocore.auth  # type: ignore[import-untyped]
import pytest
from botocore.awsrequest import AWSRequest  # type: ignore[import-untyped]
from botocore.credentials import Credentials as BotoCredentials  # type: ignore[import-untyped]

from clients.kms.signing import Credentials, canonical_uri, host_header, sign_request

NOW = datetime(2026, 11, 26, 22, 16, 56, tzinfo=UTC)
KEY = "AKIDEXAMPLE"
SECRET = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"


def botocore_headers(
    url: str,
    body: bytes,
    target: str,
    region: str,
    token: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> dict[str, str]:
    """Sign with botocore's SigV4Auth at the fixed time NOW and return its headers."""
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: NOW.replace(tzinfo=None))
    request = AWSRequest(
        method="POST",
        url=url,
        data=body,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
    )
    botocore.auth.SigV4Auth(BotoCredentials(KEY, SECRET, token), "kms", region).add_auth(request)
    return dict(request.headers.items())


def ours(url: str, body: bytes, target: str, region: str, token: str | None) -> dict[str, str]:
    return sign_request(
        method="POST",
        url=url,
        headers={"X-Amz-Target": target, "Content-Type": "application/x-amz-json-1.1"},
        body=body,
        credentials=Credentials(KEY, SECRET, token),
        region=region,
        now=NOW,
    )


CASES = [
    pytest.param("http://127.0.0.1:18443", "Encrypt", "us-east-1", None, id="loopback-port"),
    pytest.param(
        "http://127.0.0.1:18443", "Encrypt", "us-east-1", "FQoGZXIvYXdzEXAMPLE", id="token"
    ),
    pytest.param(
        "http://localhost:8080", "ListKeys", "eu-west-3", "tok  with   spaces ", id="token-spaces"
    ),
    pytest.param("http://127.0.0.1:8080/kms/v1", "DescribeKey", "us-east-1", None, id="path"),
    pytest.param("http://127.0.0.1:8080/kms/v1/", "DescribeKey", "us-east-1", None, id="slash"),
    pytest.param("http://127.0.0.1:8080/a/./b/../c", "Decrypt", "us-east-1", None, id="dots"),
    pytest.param("http://127.0.0.1:8080/with%20space", "Decrypt", "us-east-1", None, id="quoted"),
    pytest.param("https://kms.us-west-2.amazonaws.com", "GenerateDataKey", "us-west-2", None),
    pytest.param("https://KMS.US-WEST-2.amazonaws.com:443", "Sign", "us-west-2", None, id="443"),
    pytest.param("http://example.com:80/", "CreateKey", "ap-south-1", "t", id="http-80"),
    pytest.param("http://[::1]:9000", "ListAliases", "us-east-1", None, id="ipv6"),
]

BODIES = [
    b"{}",
    b"",
    json.dumps(
        {"KeyId": "k", "Plaintext": "AAFoZWxsbw==", "EncryptionContext": {"a": "b"}}
    ).encode(),
    json.dumps({"EncryptionContext": {"ключ": "värde ✓"}}, ensure_ascii=False).encode(),
]


@pytest.mark.parametrize("body", BODIES, ids=["empty-object", "empty", "encrypt", "unicode"])
@pytest.mark.parametrize(("url", "operation", "region", "token"), CASES)
def test_signature_is_byte_identical_to_botocore(
    url: str,
    operation: str,
    region: str,
    token: str | None,
    body: bytes,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target = f"TrentService.{operation}"
    expected = botocore_headers(url, body, target, region, token, monkeypatch)
    actual = ours(url, body, target, region, token)
    assert actual["Authorization"] == expected["Authorization"]
    assert actual["X-Amz-Date"] == expected["X-Amz-Date"] == "20261126T221656Z"
    assert actual.get("X-Amz-Security-Token") == expected.get("X-Amz-Security-Token") == token


def test_signed_headers_are_the_ones_botocore_signs() -> None:
    plain = ours("http://127.0.0.1:1", b"{}", "TrentService.ListKeys", "us-east-1", None)
    with_token = ours("http://127.0.0.1:1", b"{}", "TrentService.ListKeys", "us-east-1", "t")
    assert "SignedHeaders=content-type;host;x-amz-date;x-amz-target," in plain["Authorization"]
    assert (
        "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token;x-amz-target,"
        in with_token["Authorization"]
    )
    assert f"Credential={KEY}/20261126/us-east-1/kms/aws4_request" in plain["Authorization"]


def test_signature_changes_with_every_signed_input() -> None:
    base = ours("http://127.0.0.1:1", b"{}", "TrentService.ListKeys", "us-east-1", None)
    variants = [
        ours("http://127.0.0.1:2", b"{}", "TrentService.ListKeys", "us-east-1", None),
        ours("http://127.0.0.1:1", b"{ }", "TrentService.ListKeys", "us-east-1", None),
        ours("http://127.0.0.1:1", b"{}", "TrentService.ListAliases", "us-east-1", None),
        ours("http://127.0.0.1:1", b"{}", "TrentService.ListKeys", "us-east-2", None),
        ours("http://127.0.0.1:1/x", b"{}", "TrentService.ListKeys", "us-east-1", None),
    ]
    signatures = {headers["Authorization"].rsplit("=", 1)[1] for headers in [base, *variants]}
    assert len(signatures) == 1 + len(variants)


def test_non_utc_clock_is_converted_to_utc() -> None:
    plus_two = NOW.astimezone(timezone(timedelta(hours=2)))
    headers = sign_request(
        method="POST",
        url="http://127.0.0.1:1",
        headers={},
        body=b"",
        credentials=Credentials(KEY, SECRET),
        region="us-east-1",
        now=plus_two,
    )
    assert headers["X-Amz-Date"] == "20261126T221656Z"


def test_signature_matches_an_independent_reference_verifier() -> None:
    """SigV4 verification written independently here from AWS's published algorithm
    (docs/aws-behaviours.md, "Authentication") accepts our signature."""
    body = b'{"KeyId":"alias/x"}'
    headers = ours("http://127.0.0.1:8080/kms", body, "TrentService.DescribeKey", "us-east-1", "t")
    lowered = {name.lower(): value for name, value in headers.items()}
    credential, signed_names, signature = (
        part.split("=", 1)[1] for part in lowered["authorization"].split(" ", 1)[1].split(", ")
    )
    _, date, region, service, terminator = credential.split("/")
    names = signed_names.split(";")
    canonical_headers = "".join(f"{n}:{' '.join(lowered[n].split())}\n" for n in names)
    canonical = "\n".join(
        ["POST", "/kms", "", canonical_headers, signed_names, hashlib.sha256(body).hexdigest()]
    )
    string_to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            lowered["x-amz-date"],
            f"{date}/{region}/{service}/{terminator}",
            hashlib.sha256(canonical.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{SECRET}".encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    expected = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, signature)


@pytest.mark.parametrize(
    ("url", "host"),
    [
        ("http://127.0.0.1:8080", "127.0.0.1:8080"),
        ("http://LocalHost", "localhost"),
        ("http://h:80", "h"),
        ("https://h:443/p", "h"),
        ("https://h:8443", "h:8443"),
        ("http://[::1]:9000", "[::1]:9000"),
    ],
)
def test_host_header_matches_botocore(url: str, host: str) -> None:
    assert host_header(url) == host == botocore.auth._host_from_url(url)


@pytest.mark.parametrize(
    ("path", "expected"),
    [("", "/"), ("/", "/"), ("/kms//v1/", "/kms/v1/"), ("/a/b/../c", "/a/c"), ("/%41", "/%2541")],
)
def test_canonical_uri(path: str, expected: str) -> None:
    assert canonical_uri(path) == expected
