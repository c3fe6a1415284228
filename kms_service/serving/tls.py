"""HTTPS for ``mock-kms serve --tls``: where the certificate lives, and generating one.

``--tls`` alone serves a self-signed certificate generated once into ``<data-dir>/tls/`` (the
private key 0600). It names ``localhost``, ``127.0.0.1``, ``::1`` and the ``--bind`` host, so
clients can verify it by pointing at ``cert.pem`` (boto3 ``verify=``, AWS CLI
``--ca-bundle``) instead of turning verification off. ``--tls-cert``/``--tls-key`` serve the
operator's own pair instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from kms_service.domain.errors import ConfigurationError
from kms_service.settings import Settings

TLS_DIR = "tls"
CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
#: Long enough for a development data directory; regenerated when it runs out.
VALIDITY = datetime.timedelta(days=825)
_RENEW_BEFORE = datetime.timedelta(days=7)


def certificate_files(settings: Settings) -> tuple[Path, Path] | None:
    """``(cert, key)`` paths the server should use, or None when TLS is off."""
    if settings.tls_cert is not None and settings.tls_key is not None:
        return settings.tls_cert, settings.tls_key
    if settings.tls:
        directory = settings.data_dir / TLS_DIR
        return directory / CERT_FILE, directory / KEY_FILE
    return None


def ensure_certificate(settings: Settings) -> tuple[Path, Path] | None:
    """Make sure the certificate TLS needs exists; generate the self-signed one if missing or
    about to expire. Returns the ``(cert, key)`` paths (None when TLS is off).

    Raises :class:`ConfigurationError` when the files cannot be written or read.
    """
    files = certificate_files(settings)
    if files is None or settings.tls_cert is not None:
        return files
    cert_path, key_path = files
    try:
        if not _usable(cert_path, key_path):
            _generate(cert_path, key_path, _bind_host(settings.bind))
    except (OSError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot create the TLS certificate in {cert_path.parent}: {exc}"
        ) from None
    return files


def _usable(cert_path: Path, key_path: Path) -> bool:
    if not cert_path.is_file() or not key_path.is_file():
        return False
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    # The two files are written one after the other: a crash in between leaves a pair that
    # does not match, which must be regenerated rather than handed to gunicorn.
    same_key = certificate.public_key() == key.public_key()
    expires = certificate.not_valid_after_utc
    return same_key and expires - datetime.datetime.now(datetime.UTC) > _RENEW_BEFORE


def _bind_host(bind: str) -> str:
    return bind.rpartition(":")[0].strip("[]")


def _generate(cert_path: Path, key_path: Path, bind_host: str) -> None:
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    names: list[x509.GeneralName] = [x509.DNSName("localhost")]
    addresses = {"127.0.0.1", "::1"}
    try:
        if not ipaddress.ip_address(bind_host).is_unspecified:
            addresses.add(bind_host)
    except ValueError:
        if bind_host and bind_host != "localhost":
            names.append(x509.DNSName(bind_host))
    names.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses))
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mock-kms local")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        # A CA flag lets the file double as its own trust anchor (verify=cert.pem).
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    _write_atomically(key_path, key_bytes, 0o600)
    _write_atomically(cert_path, certificate.public_bytes(serialization.Encoding.PEM), 0o644)


def _write_atomically(path: Path, data: bytes, mode: int) -> None:
    # Written beside the target and renamed: a server starting at the same moment reads the
    # old file or the new one, never half of one.
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
