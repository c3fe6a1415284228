"""Sign, Verify and GetPublicKey with asymmetric SIGN_VERIFY (and, for GetPublicKey, every
asymmetric) KMS key.

RAW messages are hashed here, above the backend, with the algorithm's hash; the backend signs
the digest (or, for ED25519_SHA_512 and ML-DSA, the message itself). Verification is a
public-key operation and runs here too. The rules are in docs/key-types.md.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa, padding, rsa, utils
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from backends import ed25519ph
from backends.key_specs import SIGNING_ALGORITHMS, SIGNING_HASHES
from kms_service.domain.errors import (
    DryRunOperationException,
    InvalidKeyUsageException,
    KMSInvalidSignatureException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.backend_calls import call_backend, current_material, public_key
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.key_kinds import (
    COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS,
    algorithm_fields,
    is_asymmetric,
    require_backend_algorithm,
)
from kms_service.operations.resolve import require_state, resolve_key
from kms_service.store import KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]
DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."


def require_usage(key: KeyRecord, usage: str, operation: str) -> None:
    """Key state first, then key usage, as AWS checks them."""
    require_state(key, allow=(KeyState.ENABLED,))
    if key.key_usage != usage:
        raise InvalidKeyUsageException(
            f"{key.arn} key usage is {key.key_usage} which is not valid for {operation}."
        )


def _signing_key(
    services: Services, scope: RequestScope, request: Request, operation: str
) -> tuple[KeyRecord, str]:
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    require_usage(key, "SIGN_VERIFY", operation)
    algorithm = str(request["SigningAlgorithm"])
    if algorithm not in SIGNING_ALGORITHMS.get(key.key_spec, ()):
        raise InvalidKeyUsageException(
            f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
        )
    return key, algorithm


def signing_payload(algorithm: str, message: bytes, message_type: str) -> bytes:
    """What the private-key operation takes for ``message`` of ``message_type``: the digest
    (computed here for RAW, length-checked for DIGEST) or the message itself.

    Raises :class:`ValidationException` for a message type the algorithm does not take or a
    digest of the wrong length, :class:`UnsupportedOperationException` for EXTERNAL_MU.
    """
    if message_type == "EXTERNAL_MU":
        if algorithm != "ML_DSA_SHAKE_256":
            raise ValidationException(
                f"MessageType EXTERNAL_MU is not valid for signing algorithm {algorithm}."
            )
        if len(message) != 64:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
        # Signing a caller's mu needs ML-DSA's internal interface, which `cryptography`
        # does not expose.
        raise UnsupportedOperationException(
            "MessageType EXTERNAL_MU is not supported by mock-kms; sign the RAW message."
        )
    digest_type = SIGNING_HASHES[algorithm]
    if digest_type is None:
        # ED25519_SHA_512 and ML_DSA_SHAKE_256 sign the message itself.
        if message_type != "RAW":
            raise ValidationException(
                f"The {algorithm} signing algorithm requires MessageType RAW."
            )
        return message
    if algorithm == "ED25519_PH_SHA_512" and message_type != "DIGEST":
        raise ValidationException(f"The {algorithm} signing algorithm requires MessageType DIGEST.")
    if message_type == "DIGEST":
        if len(message) != digest_type().digest_size:
            raise ValidationException(f"Digest is invalid length for algorithm {algorithm}.")
        return message
    # hashlib: the same SHA-2 as `cryptography`, without its per-call object overhead.
    return hashlib.new(digest_type().name, message).digest()


def sign(services: Services, scope: RequestScope, request: Request) -> Response:
    key, algorithm = _signing_key(services, scope, request, "Sign")
    payload = signing_payload(algorithm, request["Message"], request.get("MessageType") or "RAW")
    backend = services.backend(key.backend)
    require_backend_algorithm(backend, "signing", algorithm)
    if request.get("DryRun"):
        raise DryRunOperationException(DRY_RUN_MESSAGE)
    material_id = current_material(key)
    signature = call_backend(key, backend, lambda: backend.sign(material_id, algorithm, payload))
    return {"KeyId": key.arn, "Signature": signature, "SigningAlgorithm": algorithm}


def signature_is_valid(
    public: PublicKeyTypes, algorithm: str, payload: bytes, signature: bytes
) -> bool:
    """Whether ``signature`` is ``algorithm``'s signature of ``payload`` (a digest or the
    message, as :func:`signing_payload` made it) under ``public``."""
    digest_type = SIGNING_HASHES[algorithm]
    try:
        if isinstance(public, rsa.RSAPublicKey) and digest_type is not None:
            scheme: padding.AsymmetricPadding = (
                padding.PSS(mgf=padding.MGF1(digest_type()), salt_length=padding.PSS.DIGEST_LENGTH)
                if algorithm.startswith("RSASSA_PSS_")
                else padding.PKCS1v15()
            )
            public.verify(signature, payload, scheme, utils.Prehashed(digest_type()))
        elif isinstance(public, ec.EllipticCurvePublicKey) and digest_type is not None:
            public.verify(signature, payload, ec.ECDSA(utils.Prehashed(digest_type())))
        elif isinstance(public, ed25519.Ed25519PublicKey):
            if algorithm == "ED25519_PH_SHA_512":
                raw = public.public_bytes(
                    serialization.Encoding.Raw, serialization.PublicFormat.Raw
                )
                return ed25519ph.verify(raw, payload, signature)
            public.verify(signature, payload)
        elif isinstance(
            public, mldsa.MLDSA44PublicKey | mldsa.MLDSA65PublicKey | mldsa.MLDSA87PublicKey
        ):
            public.verify(signature, payload)
        else:
            return False
    except (InvalidSignature, ValueError):
        return False
    return True


def verify(services: Services, scope: RequestScope, request: Request) -> Response:
    key, algorithm = _signing_key(services, scope, request, "Verify")
    payload = signing_payload(algorithm, request["Message"], request.get("MessageType") or "RAW")
    if request.get("DryRun"):
        raise DryRunOperationException(DRY_RUN_MESSAGE)
    _, public = public_key(services, key)
    if not signature_is_valid(public, algorithm, payload, request["Signature"]):
        raise KMSInvalidSignatureException()
    return {"KeyId": key.arn, "SignatureValid": True, "SigningAlgorithm": algorithm}


def get_public_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """The DER SubjectPublicKeyInfo of an asymmetric key, with the fields AWS returns."""
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    require_state(key, allow=(KeyState.ENABLED,))
    if not is_asymmetric(key):
        raise UnsupportedOperationException(
            f"{key.arn} key spec {key.key_spec} is not valid for GetPublicKey."
        )
    der, _ = public_key(services, key)
    response: Response = {
        "KeyId": key.arn,
        "PublicKey": der,
        "KeySpec": key.key_spec,
        "KeyUsage": key.key_usage,
        **algorithm_fields(key.key_spec, key.key_usage),
    }
    if key.key_spec in COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS:
        response["CustomerMasterKeySpec"] = key.key_spec
    return response
