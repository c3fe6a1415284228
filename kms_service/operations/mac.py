"""GenerateMac and VerifyMac with HMAC KMS keys (GENERATE_VERIFY_MAC). The HMAC runs in the
key's backend; VerifyMac compares in constant time. Rules in docs/key-types.md."""

from __future__ import annotations

import hmac
from typing import Any

from backends.key_specs import HMAC_SPECS
from kms_service.domain.errors import (
    DryRunOperationException,
    InvalidKeyUsageException,
    KMSInvalidMacException,
)
from kms_service.operations.backend_calls import call_backend, current_material
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.key_kinds import require_backend_algorithm
from kms_service.operations.resolve import resolve_key
from kms_service.operations.signing import DRY_RUN_MESSAGE, require_usage
from kms_service.store import KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]


def _mac(
    services: Services, scope: RequestScope, request: Request, operation: str
) -> tuple[KeyRecord, str, bytes]:
    """Check the key and algorithm, then compute the MAC; returns (key, algorithm, MAC)."""
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    require_usage(key, "GENERATE_VERIFY_MAC", operation)
    algorithm = str(request["MacAlgorithm"])
    if HMAC_SPECS[key.key_spec][0] != algorithm:
        raise InvalidKeyUsageException(
            f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
        )
    backend = services.backend(key.backend)
    require_backend_algorithm(backend, "mac", algorithm)
    if request.get("DryRun"):
        raise DryRunOperationException(DRY_RUN_MESSAGE)
    material_id = current_material(key)
    message: bytes = request["Message"]
    mac = call_backend(key, backend, lambda: backend.generate_mac(material_id, algorithm, message))
    return key, algorithm, mac


def generate_mac(services: Services, scope: RequestScope, request: Request) -> Response:
    key, algorithm, mac = _mac(services, scope, request, "GenerateMac")
    return {"Mac": mac, "MacAlgorithm": algorithm, "KeyId": key.arn}


def verify_mac(services: Services, scope: RequestScope, request: Request) -> Response:
    key, algorithm, mac = _mac(services, scope, request, "VerifyMac")
    if not hmac.compare_digest(mac, request["Mac"]):
        raise KMSInvalidMacException()
    return {"KeyId": key.arn, "MacValid": True, "MacAlgorithm": algorithm}
