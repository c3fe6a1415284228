"""DeriveSharedSecret: ECDH between a KEY_AGREEMENT key's private key (in its backend) and a
caller's public key. Rules in docs/key-types.md."""

from __future__ import annotations

from typing import Any

from backends.base import MaterialRejectedError
from kms_service.domain.errors import (
    DryRunOperationException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.operations.backend_calls import call_backend, current_material
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.key_kinds import unsupported_by_backend
from kms_service.operations.resolve import resolve_key
from kms_service.operations.signing import DRY_RUN_MESSAGE, require_usage

Request = dict[str, Any]
Response = dict[str, Any]


def derive_shared_secret(services: Services, scope: RequestScope, request: Request) -> Response:
    if request.get("Recipient") is not None:
        raise UnsupportedOperationException(
            "Recipient (Nitro Enclaves attestation) is not supported by mock-kms."
        )
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    require_usage(key, "KEY_AGREEMENT", "DeriveSharedSecret")
    backend = services.backend(key.backend)
    if key.key_spec not in backend.capabilities.key_agreement_specs:
        raise unsupported_by_backend(backend, f"Key agreement with {key.key_spec}")
    if request.get("DryRun"):
        raise DryRunOperationException(DRY_RUN_MESSAGE)
    material_id = current_material(key)
    peer: bytes = request["PublicKey"]
    try:
        secret = call_backend(key, backend, lambda: backend.derive_shared_secret(material_id, peer))
    except MaterialRejectedError:
        raise ValidationException(
            f"PublicKey must be a DER-encoded X.509 SubjectPublicKeyInfo of a point on the "
            f"curve of key spec {key.key_spec}."
        ) from None
    return {
        "KeyId": key.arn,
        "SharedSecret": secret,
        "KeyAgreementAlgorithm": "ECDH",
        "KeyOrigin": key.origin,
    }
