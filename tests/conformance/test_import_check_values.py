"""What ImportKeyMaterial relies on, on every backend that declares the wrapping algorithm
(docs/key-import.md): material wrapped by the ``openssl`` command line unwraps inside the
backend, the check value of the same material is the same however often it is unwrapped, and
different material gives a different one. Backends that do not declare an algorithm are not
asked to unwrap with it (the service refuses first)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from backends.base import KeyBackend, UnsupportedMechanismError
from kms_service.operations.imported import check_value
from tests.conformance.test_backend_conformance import backend, subject  # noqa: F401 - fixtures
from tests.support.backends import material
from tests.support.importing import wrap_with_openssl


def _pkcs8(private_key: ec.EllipticCurvePrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


CASES = {
    "SYMMETRIC_DEFAULT": lambda: os.urandom(32),
    "HMAC_256": lambda: os.urandom(32),
    "ECC_NIST_P256": lambda: _pkcs8(ec.generate_private_key(ec.SECP256R1())),
}


@pytest.mark.parametrize("key_spec", sorted(CASES))
@pytest.mark.parametrize("algorithm", ["RSAES_OAEP_SHA_1", "RSA_AES_KEY_WRAP_SHA_1"])
def test_check_value_identifies_the_material_across_unwraps(
    backend: KeyBackend,  # noqa: F811 - the fixture imported above
    tmp_path: Path,
    key_spec: str,
    algorithm: str,
) -> None:
    capabilities = backend.capabilities
    if algorithm not in capabilities.wrapping_algorithms or key_spec not in capabilities.key_specs:
        pytest.skip(f"{backend.name} does not declare {algorithm} for {key_spec}")
    wrapping_key_id = material()
    public_key = backend.create_wrapping_key(wrapping_key_id, "RSA_2048")
    try:
        secret = CASES[key_spec]()
        values = []
        for attempt in range(2):
            wrapped = wrap_with_openssl(secret, public_key, algorithm, tmp_path / str(attempt))
            material_id = material()
            try:
                backend.unwrap_material(material_id, key_spec, wrapping_key_id, algorithm, wrapped)
            except UnsupportedMechanismError as exc:
                # A backend may refuse a combination (the service answers it with
                # UnsupportedOperationException); what it accepts must behave.
                pytest.skip(f"{backend.name} refuses {algorithm} for {key_spec}: {exc}")
            values.append(check_value(backend, material_id, key_spec))
            backend.destroy_material(material_id)
        other_id = material()
        other = wrap_with_openssl(CASES[key_spec](), public_key, algorithm, tmp_path / "other")
        backend.unwrap_material(other_id, key_spec, wrapping_key_id, algorithm, other)
        different = check_value(backend, other_id, key_spec)
        backend.destroy_material(other_id)
    finally:
        backend.destroy_wrapping_key(wrapping_key_id)
    assert values[0] == values[1]
    assert different != values[0]
    assert secret not in values[0]
