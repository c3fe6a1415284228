"""https endpoints: certificate verification on by default, a CA bundle, or verify=False."""

from __future__ import annotations

import ipaddress
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from clients.kms import ConfigurationError, KmsClient, errors
from tests.unit.test_kms_client_fakeserver import Reply, ScriptedServer


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, as PEM files."""
    directory = tmp_path_factory.mktemp("tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def server_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return context


def test_ca_bundle_verifies_and_connections_are_reused(certificate: tuple[Path, Path]) -> None:
    with ScriptedServer(
        [Reply(body={"Plaintext": "AAE="})], tls=server_context(certificate)
    ) as server:
        client = server.client(verify=str(certificate[0]))
        for _ in range(3):
            assert client.generate_random(NumberOfBytes=2)["Plaintext"] == b"\x00\x01"
        client.close()
    assert server.endpoint.startswith("https://")
    assert len(server.requests) == 3
    assert len(server.connections) == 1


def test_untrusted_certificate_is_refused_by_default(certificate: tuple[Path, Path]) -> None:
    with (
        ScriptedServer([Reply(body={})], tls=server_context(certificate)) as server,
        pytest.raises(errors.EndpointConnectionError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        server.client(max_attempts=1, retry_policy=None).list_keys()
    assert server.requests == []


def test_verify_false_skips_verification(certificate: tuple[Path, Path]) -> None:
    with ScriptedServer([Reply(body={})], tls=server_context(certificate)) as server:
        result = server.client(verify=False).list_keys()
    assert result["ResponseMetadata"]["HTTPStatusCode"] == 200


def test_missing_ca_bundle_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="CA bundle"):
        KmsClient("https://127.0.0.1:1", "us-east-1", "a", "b", verify=str(tmp_path / "none.pem"))
