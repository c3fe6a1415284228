"""Helpers for the tests of asymmetric, HMAC and key-agreement keys (tests/integration).

A test parametrised over the session's backends skips on the PKCS#11 backend only where that
backend declares a spec or algorithm unsupported (the server's own AWS-shaped refusal says so);
anything else, including the same refusal from the software backend, fails the test.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes

from backends.software import SoftwareBackend
from database import open_database
from local_secrets.root_key import load_root_key
from tests.support.kms_ops import METADATA_FILE, KmsClient

T = TypeVar("T")

#: The end of the refusal for something a backend does not declare (see
#: kms_service/operations/key_kinds.py); only the PKCS#11 backend's refusals are skipped.
UNDECLARED_ON_PKCS11 = "is not supported by the pkcs11 key store of this mock-kms."

#: (key spec, key usage) of every key kind AWS offers in its commercial Regions.
SIGNING_SPECS = [
    "RSA_2048", "RSA_3072", "RSA_4096", "ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521",
    "ECC_SECG_P256K1", "ECC_NIST_EDWARDS25519", "ML_DSA_44", "ML_DSA_65", "ML_DSA_87",
]  # fmt: skip
RSA_SPECS = ["RSA_2048", "RSA_3072", "RSA_4096"]
HMAC_SPECS = ["HMAC_224", "HMAC_256", "HMAC_384", "HMAC_512"]
AGREEMENT_SPECS = ["ECC_NIST_P256", "ECC_NIST_P384", "ECC_NIST_P521"]


def declared(call: Callable[[], T]) -> T:
    """Run ``call``; skip the test if the PKCS#11 backend refuses it as undeclared."""
    try:
        return call()
    except ClientError as error:
        details = error.response["Error"]
        if details["Code"] == "UnsupportedOperationException" and details.get(
            "Message", ""
        ).endswith(UNDECLARED_ON_PKCS11):
            pytest.skip(f"the PKCS#11 backend declares this unsupported: {details['Message']}")
        raise


def create_key_of(kms: KmsClient, key_spec: str, key_usage: str, **kwargs: Any) -> dict[str, Any]:
    """CreateKey of a spec and usage (skipped where the PKCS#11 backend does not declare the
    spec); returns the KeyMetadata."""
    response = declared(lambda: kms.create_key(KeySpec=key_spec, KeyUsage=key_usage, **kwargs))
    return dict(response["KeyMetadata"])


def public_key_of(kms: KmsClient, key_id: str) -> PublicKeyTypes:
    """GetPublicKey, loaded with `cryptography`."""
    return serialization.load_der_public_key(kms.get_public_key(KeyId=key_id)["PublicKey"])


def public_pem(kms: KmsClient, key_id: str, path: Path) -> Path:
    """Write the PEM of GetPublicKey's DER to ``path`` (for the openssl command line)."""
    public = public_key_of(kms, key_id)
    path.write_bytes(
        public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path


def software_material(data_dir: Path, key_id: str, *, database_url: str | None = None) -> bytes:
    """The plaintext material of a key held by a software-backend server in ``data_dir`` (its
    store there, or in the PostgreSQL database ``database_url``): read as `mock-kms export
    --include-material` reads it (metadata, then the keystore opened with the data
    directory's root key). For tests that compare KMS with offline code."""
    database = open_database(database_url or data_dir / METADATA_FILE)
    try:
        row = database.execute(
            "SELECT material_id FROM key_materials WHERE key_id = ? ORDER BY seq DESC LIMIT 1",
            (key_id,),
        ).fetchone()
    finally:
        database.close()
    assert row is not None, key_id
    root_key = load_root_key(data_dir, None, create=False)
    backend = SoftwareBackend(data_dir, root_key, database_url)
    try:
        return backend.export_material(str(row[0]))
    finally:
        backend.close()


def load_private(der: bytes) -> PrivateKeyTypes:
    return serialization.load_der_private_key(der, password=None)
