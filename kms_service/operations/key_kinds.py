"""What each AWS key spec is for: allowed key usages, the algorithm lists KeyMetadata and
GetPublicKey report, and the capability check against the key's backend.

The rules (and the AWS pages they come from) are in docs/key-types.md.
"""

from __future__ import annotations

from typing import Any

from backends.base import KeyBackend
from backends.key_specs import (
    ASYMMETRIC_SPECS,
    EC_CURVES,
    ED25519_SPEC,
    HMAC_SPECS,
    KEY_AGREEMENT_SPECS,
    ML_DSA_SPECS,
    RSA_ENCRYPTION,
    RSA_SPECS,
    SIGNING_ALGORITHMS,
    SYMMETRIC_DEFAULT,
)
from kms_service.domain.errors import UnsupportedOperationException, ValidationException
from kms_service.store import KeyRecord

#: Key specs AWS offers in its commercial Regions, in the order of AWS's enum. SM2 is offered
#: only in the China Regions, where a commercial-Region endpoint does not list it.
COMMERCIAL_KEY_SPECS: tuple[str, ...] = (
    *RSA_SPECS,
    *EC_CURVES,
    SYMMETRIC_DEFAULT,
    *HMAC_SPECS,
    *ML_DSA_SPECS,
    ED25519_SPEC,
)
#: ``CustomerMasterKeySpec`` (deprecated) predates Ed25519 and ML-DSA.
COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS: tuple[str, ...] = (
    *RSA_SPECS,
    *EC_CURVES,
    SYMMETRIC_DEFAULT,
    *HMAC_SPECS,
)
#: ``KeyPairSpec`` of GenerateDataKeyPair in the commercial Regions that mock-kms serves (SM2
#: is China-only; the ML-KEM pair specs are refused as unsupported).
COMMERCIAL_KEY_PAIR_SPECS: tuple[str, ...] = (*RSA_SPECS, *EC_CURVES, ED25519_SPEC)

#: Key spec -> the key usages AWS allows for it.
ALLOWED_USAGES: dict[str, tuple[str, ...]] = {
    SYMMETRIC_DEFAULT: ("ENCRYPT_DECRYPT",),
    **dict.fromkeys(RSA_SPECS, ("ENCRYPT_DECRYPT", "SIGN_VERIFY")),
    **dict.fromkeys(KEY_AGREEMENT_SPECS, ("SIGN_VERIFY", "KEY_AGREEMENT")),
    "ECC_SECG_P256K1": ("SIGN_VERIFY",),
    ED25519_SPEC: ("SIGN_VERIFY",),
    **dict.fromkeys(ML_DSA_SPECS, ("SIGN_VERIFY",)),
    **dict.fromkeys(HMAC_SPECS, ("GENERATE_VERIFY_MAC",)),
}


def commercial_enum_error(member: str, value: str, allowed: tuple[str, ...]) -> ValidationException:
    """The Coral validation error a commercial-Region endpoint gives for a value (SM2) that
    its enum does not list."""
    return ValidationException(
        f"1 validation error detected: Value '{value}' at '{member}' failed to satisfy "
        f"constraint: Member must satisfy enum value set: [{', '.join(allowed)}]"
    )


def is_symmetric(key: KeyRecord) -> bool:
    return key.key_spec == SYMMETRIC_DEFAULT


def is_asymmetric(key: KeyRecord) -> bool:
    return key.key_spec in ASYMMETRIC_SPECS


def is_hmac(key: KeyRecord) -> bool:
    return key.key_spec in HMAC_SPECS


def encryption_algorithms(key_spec: str) -> list[str]:
    """The encryption algorithms of an ENCRYPT_DECRYPT key of ``key_spec``."""
    return ["SYMMETRIC_DEFAULT"] if key_spec == SYMMETRIC_DEFAULT else list(RSA_ENCRYPTION)


def algorithm_fields(key_spec: str, key_usage: str) -> dict[str, Any]:
    """The algorithm list AWS reports for a key (KeyMetadata, GetPublicKey): exactly one of
    EncryptionAlgorithms, SigningAlgorithms, MacAlgorithms, KeyAgreementAlgorithms."""
    if key_usage == "ENCRYPT_DECRYPT":
        return {"EncryptionAlgorithms": encryption_algorithms(key_spec)}
    if key_usage == "SIGN_VERIFY":
        return {"SigningAlgorithms": list(SIGNING_ALGORITHMS[key_spec])}
    if key_usage == "GENERATE_VERIFY_MAC":
        return {"MacAlgorithms": [HMAC_SPECS[key_spec][0]]}
    if key_usage == "KEY_AGREEMENT":
        return {"KeyAgreementAlgorithms": ["ECDH"]}
    return {}


def unsupported_by_backend(backend: KeyBackend, what: str) -> UnsupportedOperationException:
    """The refusal for something the key's backend does not declare in its capabilities."""
    return UnsupportedOperationException(
        f"{what} is not supported by the {backend.name} key store of this mock-kms."
    )


def require_backend_spec(backend: KeyBackend, key_spec: str) -> None:
    """Raise :class:`UnsupportedOperationException` unless ``backend`` declares ``key_spec``."""
    if key_spec not in backend.capabilities.key_specs:
        raise unsupported_by_backend(backend, f"KeySpec {key_spec}")


def require_backend_algorithm(backend: KeyBackend, kind: str, algorithm: str) -> None:
    """Raise :class:`UnsupportedOperationException` unless ``backend`` declares ``algorithm``
    among its ``kind`` algorithms (``signing``, ``encryption``, ``mac``)."""
    capabilities = backend.capabilities
    declared = {
        "signing": capabilities.signing_algorithms,
        "encryption": capabilities.encryption_algorithms,
        "mac": capabilities.mac_algorithms,
    }[kind]
    if algorithm not in declared:
        raise unsupported_by_backend(backend, f"Algorithm {algorithm}")
