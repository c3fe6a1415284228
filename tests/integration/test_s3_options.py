"""The serve options around S3: an operator's own certificate, S3 using another KMS
(``--s3-kms-endpoint``) and what happens when that KMS is gone, and bad option values."""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.sse import CustomerKey, sse_kms
from tests.support.s3 import error_code, kms_client, s3_client
from tests.support.server import start_server


def operator_certificate(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "operator test")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "operator.pem", directory / "operator.key"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_operator_certificate(tmp_path: Path) -> None:
    cert_path, key_path = operator_certificate(tmp_path)
    server = start_server(
        tmp_path / "data",
        workers=1,
        extra_args=["--tls-cert", str(cert_path), "--tls-key", str(key_path)],
    )
    try:
        assert server.scheme == "https"
        assert not (server.data_dir / "tls").exists()  # nothing generated
        import boto3

        s3 = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            region_name="us-east-1",
            verify=str(cert_path),
            aws_access_key_id="a",
            aws_secret_access_key="b",
        )
        s3.create_bucket(Bucket="operator")
        key = CustomerKey.generate()
        s3.put_object(Bucket="operator", Key="k", Body=b"over tls", **key.put_args())
        assert s3.get_object(Bucket="operator", Key="k", **key.get_args())["Body"].read() == (
            b"over tls"
        )
        # The KMS side serves HTTPS on the same port too.
        kms = boto3.client(
            "kms", endpoint_url=server.endpoint, region_name="us-east-1", verify=str(cert_path),
            aws_access_key_id="a", aws_secret_access_key="b",
        )  # fmt: skip
        assert kms.list_keys()["ResponseMetadata"]["HTTPStatusCode"] == 200
    finally:
        server.stop()


def test_s3_uses_the_configured_kms(tmp_path: Path) -> None:
    kms_only = start_server(tmp_path / "kms", workers=1, extra_args=["--no-s3"])
    s3_server = None
    try:
        external = kms_client(kms_only)
        key_arn = external.create_key(Description="external")["KeyMetadata"]["Arn"]
        s3_server = start_server(
            tmp_path / "s3", workers=1, extra_args=["--s3-kms-endpoint", kms_only.endpoint]
        )
        s3 = s3_client(s3_server)
        s3.create_bucket(Bucket="external-kms")
        put = s3.put_object(Bucket="external-kms", Key="k", Body=b"data", **sse_kms(key_arn))
        assert put["SSEKMSKeyId"] == key_arn
        managed = s3.put_object(Bucket="external-kms", Key="m", Body=b"data", **sse_kms())
        assert (
            external.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["Arn"]
            == (managed["SSEKMSKeyId"])
        )
        # The S3 server's own KMS was not involved: it has neither key.
        own = kms_client(s3_server)
        for arn in (key_arn, managed["SSEKMSKeyId"]):
            with pytest.raises(own.exceptions.NotFoundException):
                own.describe_key(KeyId=arn)
        assert s3.get_object(Bucket="external-kms", Key="k")["Body"].read() == b"data"

        kms_only.stop()
        status, code, message = error_code_of(lambda: s3.get_object(Bucket="external-kms", Key="k"))
        assert (status, code) == (500, "InternalError")
        assert kms_only.endpoint in message
        # SSE-S3 does not need the KMS at all.
        s3.put_object(Bucket="external-kms", Key="s3", Body=b"fine")
    finally:
        kms_only.stop()
        if s3_server is not None:
            s3_server.stop()


def error_code_of(call: object) -> tuple[int, str, str]:
    with pytest.raises(ClientError) as caught:
        call()  # type: ignore[operator]
    return error_code(caught.value)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--tls-cert", "/nonexistent/cert.pem"],
            "--tls-cert and --tls-key must be given together",
        ),
        (["--s3-kms-endpoint", "ftp://kms"], "--s3-kms-endpoint"),
    ],
)
def test_bad_options_fail_fast(tmp_path: Path, args: list[str], message: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "kms_service.serving.cli",
            "serve",
            "--data-dir",
            str(tmp_path),
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_sigv4_kms_with_the_server_credentials(tmp_path: Path) -> None:
    """With ``--auth sigv4`` the KMS checks every signature, so S3 signs its KMS calls with the
    server's own AWS credentials (here from its environment)."""
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[s3-service]\naws_access_key_id = AKIDS3SERVICE\naws_secret_access_key = service-secret\n"
        "[caller]\naws_access_key_id = AKIDS3TEST\naws_secret_access_key = s3-test-secret\n"
    )
    server = start_server(
        tmp_path / "data",
        workers=1,
        extra_args=["--auth", "sigv4", "--credentials-file", str(credentials)],
        env={"AWS_ACCESS_KEY_ID": "AKIDS3SERVICE", "AWS_SECRET_ACCESS_KEY": "service-secret"},
    )
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="signed")
        put = s3.put_object(Bucket="signed", Key="k", Body=b"signed kms", **sse_kms())
        assert put["ServerSideEncryption"] == "aws:kms"
        assert s3.get_object(Bucket="signed", Key="k")["Body"].read() == b"signed kms"
    finally:
        server.stop()
