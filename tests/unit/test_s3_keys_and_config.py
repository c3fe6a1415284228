"""SSE-S3 master key and data-key wrapping, SSE-KMS context rules, ranges and conditions,
request routing, and the new serve options (TLS certificate included)."""

from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from kms_service.domain.errors import ConfigurationError
from kms_service.serving.tls import ensure_certificate
from kms_service.settings import Settings
from s3_service import sse_kms
from s3_service.content import parse_range
from s3_service.errors import S3Error
from s3_service.routing import is_kms_request
from s3_service.sse_s3 import (
    MASTER_KEY_FILE,
    DataKeyUnwrapError,
    MasterKeyError,
    SseS3Keys,
    load_master_key,
)

ROOT = os.urandom(32)


def test_master_key_is_created_once_and_stored_wrapped(tmp_path: Path) -> None:
    first = load_master_key(tmp_path, ROOT, create=True)
    assert load_master_key(tmp_path, ROOT, create=True) == first
    stored = (tmp_path / MASTER_KEY_FILE).read_bytes()
    assert first not in stored
    assert oct((tmp_path / MASTER_KEY_FILE).stat().st_mode & 0o777) == "0o600"
    with pytest.raises(MasterKeyError, match="different root key"):
        load_master_key(tmp_path, os.urandom(32), create=False)


def test_missing_master_key_without_create(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="missing"):
        load_master_key(tmp_path, ROOT, create=False)


def test_data_keys_are_bound_to_their_envelope() -> None:
    keys = SseS3Keys(os.urandom(32))
    data_key, wrapped = keys.new_data_key("object-1")
    assert len(data_key) == 32 and data_key not in wrapped
    assert keys.unwrap(wrapped, "object-1") == data_key
    with pytest.raises(DataKeyUnwrapError):
        keys.unwrap(wrapped, "object-2")


def test_context_header_parsing() -> None:
    header = base64.b64encode(json.dumps({"team": "a"}).encode()).decode()
    assert sse_kms.parse_context_header(header) == {"team": "a"}
    for bad in (
        "not base64!",
        base64.b64encode(b"[1]").decode(),
        base64.b64encode(b'{"a":1}').decode(),
    ):
        with pytest.raises(S3Error) as caught:
            sse_kms.parse_context_header(bad)
        assert caught.value.code == "InvalidArgument"
        assert "string-string map" in caught.value.message


def test_kms_context_adds_and_checks_the_arn() -> None:
    arn = sse_kms.object_arn("b", "k")
    assert sse_kms.kms_context({"x": "y"}, arn) == {"x": "y", "aws:s3:arn": arn}
    assert sse_kms.kms_context({"aws:s3:arn": arn}, arn) == {"aws:s3:arn": arn}
    with pytest.raises(S3Error) as caught:
        sse_kms.kms_context({"aws:s3:arn": sse_kms.object_arn("b", "other")}, arn)
    assert caught.value.code == "InvalidArgument"


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-9", 100, (0, 9)),
        ("bytes=90-", 100, (90, 99)),
        ("bytes=-10", 100, (90, 99)),
        ("bytes=-1000", 100, (0, 99)),
        ("bytes=50-5000", 100, (50, 99)),
        ("bytes=9-0", 100, None),
        ("bytes=0-1,3-4", 100, None),
        ("items=0-1", 100, None),
        (None, 100, None),
    ],
)
def test_ranges(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    found = parse_range(header, size)
    assert (None if found is None else (found.start, found.end)) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0)]
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(S3Error) as caught:
        parse_range(header, size)
    assert (caught.value.status, caught.value.code) == (416, "InvalidRange")


@pytest.mark.parametrize(
    ("environ", "kms"),
    [
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "TrentService.Encrypt"}, True),
        ({"REQUEST_METHOD": "POST", "HTTP_X_AMZ_TARGET": "Other.Op"}, True),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/healthz"}, True),
        ({"REQUEST_METHOD": "POST", "CONTENT_TYPE": "application/x-amz-json-1.1"}, True),
        (
            {
                "REQUEST_METHOD": "POST",
                "CONTENT_TYPE": "application/x-amz-json-1.1",
                "QUERY_STRING": "uploads",
            },
            False,
        ),
        ({"REQUEST_METHOD": "POST", "PATH_INFO": "/b/k", "QUERY_STRING": "uploads"}, False),
        ({"REQUEST_METHOD": "PUT", "PATH_INFO": "/bucket"}, False),
        ({"REQUEST_METHOD": "GET", "PATH_INFO": "/"}, False),
    ],
)
def test_router_split(environ: dict[str, str], kms: bool) -> None:
    assert is_kms_request(environ) is kms


def test_new_options_from_environment(tmp_path: Path) -> None:
    cert, key = tmp_path / "c.pem", tmp_path / "k.pem"
    cert.write_text("x")
    key.write_text("y")
    settings = Settings.from_sources(
        {},
        {
            "MOCK_KMS_NO_S3": "true",
            "MOCK_KMS_TLS_CERT": str(cert),
            "MOCK_KMS_TLS_KEY": str(key),
            "MOCK_KMS_S3_KMS_ENDPOINT": "https://kms.example:8443",
            "MOCK_KMS_ALLOW_SSE_C_OVER_HTTP": "1",
        },
    ).validate()
    assert not settings.s3_enabled and settings.tls_enabled
    assert settings.allow_sse_c_over_http
    assert settings.s3_kms_endpoint == "https://kms.example:8443"
    defaults = Settings.from_sources({}, {})
    assert defaults.s3_enabled and not defaults.tls_enabled and not defaults.allow_sse_c_over_http


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"MOCK_KMS_TLS": "maybe"}, "must be one of"),
        ({"MOCK_KMS_TLS_CERT": "/nonexistent.pem"}, "must be given together"),
        (
            {"MOCK_KMS_TLS_CERT": "/nonexistent.pem", "MOCK_KMS_TLS_KEY": "/nonexistent.key"},
            "does not exist",
        ),
        ({"MOCK_KMS_S3_KMS_ENDPOINT": "kms.example:80"}, "http(s)://HOST[:PORT]"),
    ],
)
def test_bad_new_options(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigurationError, match=re.escape(message)):
        Settings.from_sources({}, environ).validate()


def test_generated_certificate_names_loopback_and_is_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tls=True, bind="0.0.0.0:8443")
    files = ensure_certificate(settings)
    assert files is not None
    cert_path, key_path = files
    assert oct(key_path.stat().st_mode & 0o777) == "0o600"
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    before = cert_path.read_bytes()
    ensure_certificate(settings)
    assert cert_path.read_bytes() == before
    # A key that does not match the certificate (crash between the two writes) is replaced.
    other = ec.generate_private_key(ec.SECP256R1())
    key_path.write_bytes(
        other.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ensure_certificate(settings)
    assert cert_path.read_bytes() != before


def test_no_certificate_without_tls(tmp_path: Path) -> None:
    assert ensure_certificate(Settings(data_dir=tmp_path)) is None
    assert not (tmp_path / "tls").exists()
