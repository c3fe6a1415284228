"""GenerateDataKeyPair and GenerateDataKeyPairWithoutPlaintext: a fresh key pair for use
outside KMS, its private key (PKCS#8 DER) encrypted under a symmetric KMS key as an ordinary
ciphertext blob that Decrypt opens. Rules in docs/key-types.md."""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from backends.key_specs import EC_CURVES, RSA_SPECS
from kms_service.domain.errors import DryRunOperationException, UnsupportedOperationException
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.crypto import seal, usable_key
from kms_service.operations.key_kinds import COMMERCIAL_KEY_PAIR_SPECS, commercial_enum_error
from kms_service.operations.signing import DRY_RUN_MESSAGE

Request = dict[str, Any]
Response = dict[str, Any]


def generate_key_pair(key_pair_spec: str) -> PrivateKeyTypes:
    """A fresh private key of a ``KeyPairSpec`` AWS offers in its commercial Regions."""
    if key_pair_spec in RSA_SPECS:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_SPECS[key_pair_spec])
    if key_pair_spec in EC_CURVES:
        return ec.generate_private_key(EC_CURVES[key_pair_spec]())
    return ed25519.Ed25519PrivateKey.generate()


def _generate(
    services: Services, scope: RequestScope, request: Request, operation: str
) -> tuple[Response, bytes]:
    """The response without the plaintext private key, and the plaintext private key."""
    key_pair_spec = str(request["KeyPairSpec"])
    if key_pair_spec == "SM2":
        raise commercial_enum_error("keyPairSpec", key_pair_spec, COMMERCIAL_KEY_PAIR_SPECS)
    if key_pair_spec not in COMMERCIAL_KEY_PAIR_SPECS:
        raise UnsupportedOperationException(
            f"KeyPairSpec {key_pair_spec} is not supported by mock-kms."
        )
    key = usable_key(services, scope, request["KeyId"], operation, None, symmetric_only=True)
    if request.get("DryRun"):
        raise DryRunOperationException(DRY_RUN_MESSAGE)
    private = generate_key_pair(key_pair_spec)
    private_der = private.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public_der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    blob = seal(services, key, private_der, request.get("EncryptionContext"))
    response: Response = {
        "PrivateKeyCiphertextBlob": blob,
        "PublicKey": public_der,
        "KeyId": key.arn,
        "KeyPairSpec": key_pair_spec,
        "KeyMaterialId": key.current_material_id,
    }
    return response, private_der


def generate_data_key_pair(services: Services, scope: RequestScope, request: Request) -> Response:
    if request.get("Recipient") is not None:
        raise UnsupportedOperationException(
            "Recipient (Nitro Enclaves attestation) is not supported by mock-kms."
        )
    response, private_der = _generate(services, scope, request, "GenerateDataKeyPair")
    return {**response, "PrivateKeyPlaintext": private_der}


def generate_data_key_pair_without_plaintext(
    services: Services, scope: RequestScope, request: Request
) -> Response:
    response, _ = _generate(services, scope, request, "GenerateDataKeyPairWithoutPlaintext")
    return response
