"""Cryptographic operations, written once above the backends: symmetric encryption and data
keys, with RSA-OAEP for asymmetric ENCRYPT_DECRYPT keys (:mod:`.asymmetric_crypto`).

Every decryption failure (malformed blob, unknown key or material, wrong backend, wrong
context, tampering) is the same message-less ``InvalidCiphertextException``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from backends.base import (
    NONCE_SIZE,
    BackendUnavailableError,
    DecryptionFailedError,
    MaterialNotFoundError,
    backend_code,
)
from kms_service.access.actions import REENCRYPT_FROM, REENCRYPT_TO
from kms_service.domain.ciphertext import (
    MalformedCiphertextError,
    associated_data,
    decode_blob,
    encode_blob,
    encode_header,
)
from kms_service.domain.errors import (
    DryRunOperationException,
    IncorrectKeyException,
    InvalidCiphertextException,
    InvalidKeyUsageException,
    KeyUnavailableException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.asymmetric_crypto import (
    INCORRECT_KEY_MESSAGE,
    refuse_context,
    require_rsa_algorithm,
    rsa_decrypt,
    rsa_encrypt,
)
from kms_service.operations.backend_calls import unavailable
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.custom_key_stores import random_from_store
from kms_service.operations.resolve import KEY_ID_PATTERN, require_state, resolve_key
from kms_service.store import KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]
ALGORITHM = "SYMMETRIC_DEFAULT"
DATA_KEY_SIZES = {"AES_256": 32, "AES_128": 16}
_DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."


def usable_key(
    services: Services,
    scope: RequestScope,
    key_id: str,
    operation: str,
    algorithm: str | None,
    *,
    symmetric_only: bool = False,
    action: str | None = None,
) -> KeyRecord:
    """Resolve a key for a cryptographic operation and apply AWS's checks in AWS's order:
    not found, authorisation (``action``, default the operation's), key state, key usage,
    algorithm. ``symmetric_only`` operations (data keys) refuse RSA encryption keys too."""
    key = resolve_key(services, scope, key_id, allow_alias=True, action=action)
    if symmetric_only:
        require_symmetric(key, operation)
    require_usable(key, operation, algorithm)
    return key


def require_symmetric(key: KeyRecord, operation: str) -> None:
    """Key state, key usage, then key spec for operations only symmetric encryption keys
    serve (GenerateDataKey*, GenerateDataKeyPair*)."""
    require_state(key, allow=(KeyState.ENABLED,))
    _require_encrypt_decrypt(key, operation)
    if key.key_spec != ALGORITHM:
        raise InvalidKeyUsageException(
            f"{key.arn} key KeySpec is {key.key_spec} which is not valid for {operation}."
        )


def _require_encrypt_decrypt(key: KeyRecord, operation: str) -> None:
    if key.key_usage != "ENCRYPT_DECRYPT":
        raise InvalidKeyUsageException(
            f"{key.arn} key usage is {key.key_usage} which is not valid for {operation}."
        )


def require_usable(key: KeyRecord, operation: str, algorithm: str | None) -> None:
    """Key state, then key usage, then algorithm; raises the matching AWS error."""
    require_state(key, allow=(KeyState.ENABLED,))
    _require_encrypt_decrypt(key, operation)
    if key.key_spec != ALGORITHM:
        require_rsa_algorithm(key, algorithm)
    elif algorithm not in (None, ALGORITHM):
        raise InvalidKeyUsageException(
            f"Algorithm {algorithm} is incompatible with key spec {key.key_spec}."
        )


def seal(
    services: Services, key: KeyRecord, plaintext: bytes, context: Mapping[str, str] | None
) -> bytes:
    """Encrypt under the key's current material; returns a ciphertext blob."""
    material_id = key.current_material_id
    if material_id is None:
        raise KeyUnavailableException(f"{key.arn} has no key material.")
    code = backend_code(key.backend)
    if code is None:
        raise unavailable(key)
    header = encode_header(code, key.key_id, material_id)
    nonce = os.urandom(NONCE_SIZE)
    backend = services.backend(key.backend)
    try:
        sealed = backend.encrypt(material_id, nonce, plaintext, associated_data(header, context))
    except (BackendUnavailableError, MaterialNotFoundError):
        raise unavailable(key) from None
    return encode_blob(header, nonce, sealed)


def unseal(
    services: Services,
    scope: RequestScope,
    blob: bytes,
    context: Mapping[str, str] | None,
    requested: KeyRecord | None,
    operation: str,
    algorithm: str | None,
) -> tuple[KeyRecord, str, bytes]:
    """Decrypt a symmetric blob; returns ``(key, material id, plaintext)``.

    Raises the key's state errors, :class:`IncorrectKeyException` when ``requested`` (the
    key the caller named, if any) is another key, and :class:`InvalidCiphertextException`
    for everything else.
    """
    try:
        parsed = decode_blob(blob)
    except MalformedCiphertextError:
        raise InvalidCiphertextException() from None
    # ReEncrypt's source key is authorised with kms:ReEncryptFrom (docs/access-control.md).
    action = REENCRYPT_FROM if operation == "ReEncrypt" else None
    if requested is not None:
        if requested.key_id != parsed.key_id:
            raise IncorrectKeyException(INCORRECT_KEY_MESSAGE)
        key = requested
    else:
        # The blob names its key by bare id in the caller's account and region; anything
        # else there (an ARN, an alias) is a bad blob, never a reason for another error.
        if not KEY_ID_PATTERN.match(parsed.key_id):
            raise InvalidCiphertextException()
        try:
            key = resolve_key(services, scope, parsed.key_id, action=action)
        except NotFoundException:
            # The blob names a key this account and region do not have: a bad blob.
            raise InvalidCiphertextException() from None
    require_usable(key, operation, algorithm)
    if parsed.backend_code != backend_code(key.backend) or not (
        services.store.key_owns_material(key, parsed.material_id)
    ):
        raise InvalidCiphertextException()
    backend = services.backend(key.backend)
    try:
        plaintext = backend.decrypt(
            parsed.material_id,
            parsed.nonce,
            parsed.sealed,
            associated_data(parsed.header, context),
        )
    except (DecryptionFailedError, MaterialNotFoundError):
        raise InvalidCiphertextException() from None
    except BackendUnavailableError:
        raise unavailable(key) from None
    return key, parsed.material_id, plaintext


def _reject_recipient(request: Request) -> None:
    if request.get("Recipient") is not None:
        raise UnsupportedOperationException(
            "Recipient (Nitro Enclaves attestation) is not supported by mock-kms."
        )


def _requested_key(
    services: Services, scope: RequestScope, key_id: str | None, action: str | None = None
) -> KeyRecord | None:
    """The key the caller named, if any, authorised for ``action`` (default the operation's)."""
    if key_id is None:
        return None
    return resolve_key(services, scope, key_id, allow_alias=True, action=action)


def encrypt(services: Services, scope: RequestScope, request: Request) -> Response:
    algorithm = request.get("EncryptionAlgorithm")
    key = usable_key(services, scope, request["KeyId"], "Encrypt", algorithm)
    if key.key_spec != ALGORITHM:
        refuse_context(request.get("EncryptionContext"))
        if request.get("DryRun"):
            raise DryRunOperationException(_DRY_RUN_MESSAGE)
        chosen = require_rsa_algorithm(key, algorithm)
        ciphertext = rsa_encrypt(services, key, chosen, request["Plaintext"])
        return {"CiphertextBlob": ciphertext, "KeyId": key.arn, "EncryptionAlgorithm": chosen}
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    blob = seal(services, key, request["Plaintext"], request.get("EncryptionContext"))
    return {"CiphertextBlob": blob, "KeyId": key.arn, "EncryptionAlgorithm": ALGORITHM}


def _decrypt_asymmetric(
    services: Services,
    key: KeyRecord,
    blob: bytes,
    context: Mapping[str, str] | None,
    algorithm: str | None,
    operation: str,
    dry_run: bool,
) -> tuple[str, bytes]:
    """Decrypt an RSA-OAEP ciphertext under ``key``; returns ``(algorithm, plaintext)``."""
    require_usable(key, operation, algorithm)
    assert algorithm is not None  # require_usable refuses an omitted one for RSA keys
    refuse_context(context)
    if dry_run:
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    return algorithm, rsa_decrypt(services, key, algorithm, blob)


def decrypt(services: Services, scope: RequestScope, request: Request) -> Response:
    _reject_recipient(request)
    algorithm = request.get("EncryptionAlgorithm")
    blob = request.get("CiphertextBlob")
    if request.get("DryRun") and "IGNORE_CIPHERTEXT" in (request.get("DryRunModifiers") or []):
        if request.get("KeyId") is None:
            raise ValidationException(
                "KeyId is required when DryRunModifiers contains IGNORE_CIPHERTEXT."
            )
        usable_key(services, scope, request["KeyId"], "Decrypt", algorithm)
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    if blob is None:
        raise ValidationException(
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
            "constraint: Member must not be null"
        )
    requested = _requested_key(services, scope, request.get("KeyId"))
    if requested is not None and requested.key_spec != ALGORITHM:
        used, plaintext = _decrypt_asymmetric(
            services,
            requested,
            blob,
            request.get("EncryptionContext"),
            algorithm,
            "Decrypt",
            bool(request.get("DryRun")),
        )
        return {"KeyId": requested.arn, "Plaintext": plaintext, "EncryptionAlgorithm": used}
    key, material_id, plaintext = unseal(
        services,
        scope,
        blob,
        request.get("EncryptionContext"),
        requested,
        "Decrypt",
        algorithm,
    )
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    return {
        "KeyId": key.arn,
        "Plaintext": plaintext,
        "EncryptionAlgorithm": ALGORITHM,
        "KeyMaterialId": material_id,
    }


def re_encrypt(services: Services, scope: RequestScope, request: Request) -> Response:
    blob = request.get("CiphertextBlob")
    destination = usable_key(
        services,
        scope,
        request["DestinationKeyId"],
        "ReEncrypt",
        request.get("DestinationEncryptionAlgorithm"),
        action=REENCRYPT_TO,
    )
    if blob is None:
        raise ValidationException(
            "1 validation error detected: Value null at 'ciphertextBlob' failed to satisfy "
            "constraint: Member must not be null"
        )
    destination_algorithm = request.get("DestinationEncryptionAlgorithm") or ALGORITHM
    destination_context = request.get("DestinationEncryptionContext")
    if destination.key_spec != ALGORITHM:
        refuse_context(destination_context)
    requested = _requested_key(services, scope, request.get("SourceKeyId"), REENCRYPT_FROM)
    source_material: str | None = None
    if requested is not None and requested.key_spec != ALGORITHM:
        source = requested
        source_algorithm, plaintext = _decrypt_asymmetric(
            services,
            requested,
            blob,
            request.get("SourceEncryptionContext"),
            request.get("SourceEncryptionAlgorithm"),
            "ReEncrypt",
            bool(request.get("DryRun")),
        )
    else:
        source, source_material, plaintext = unseal(
            services,
            scope,
            blob,
            request.get("SourceEncryptionContext"),
            requested,
            "ReEncrypt",
            request.get("SourceEncryptionAlgorithm"),
        )
        source_algorithm = ALGORITHM
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    response: Response = {
        "SourceKeyId": source.arn,
        "KeyId": destination.arn,
        "SourceEncryptionAlgorithm": source_algorithm,
        "DestinationEncryptionAlgorithm": destination_algorithm,
    }
    if source_material is not None:
        response["SourceKeyMaterialId"] = source_material
    if destination.key_spec != ALGORITHM:
        response["CiphertextBlob"] = rsa_encrypt(
            services, destination, destination_algorithm, plaintext
        )
    else:
        response["CiphertextBlob"] = seal(services, destination, plaintext, destination_context)
        response["DestinationKeyMaterialId"] = destination.current_material_id
    return response


def _data_key_size(request: Request) -> int:
    key_spec: str | None = request.get("KeySpec")
    size: int | None = request.get("NumberOfBytes")
    if key_spec is not None and size is None:
        return DATA_KEY_SIZES[key_spec]
    if size is not None and key_spec is None:
        return size
    raise ValidationException("Please specify either number of bytes or key spec.")


def _generate_data_key(
    services: Services, scope: RequestScope, request: Request, operation: str
) -> tuple[KeyRecord, bytes, bytes]:
    size = _data_key_size(request)
    key = usable_key(services, scope, request["KeyId"], operation, None, symmetric_only=True)
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    try:
        data_key = services.backend(key.backend).generate_random(size)
    except BackendUnavailableError:
        raise unavailable(key) from None
    return key, data_key, seal(services, key, data_key, request.get("EncryptionContext"))


def generate_data_key(services: Services, scope: RequestScope, request: Request) -> Response:
    _reject_recipient(request)
    key, data_key, blob = _generate_data_key(services, scope, request, "GenerateDataKey")
    return {
        "CiphertextBlob": blob,
        "Plaintext": data_key,
        "KeyId": key.arn,
        "KeyMaterialId": key.current_material_id,
    }


def generate_data_key_without_plaintext(
    services: Services, scope: RequestScope, request: Request
) -> Response:
    key, _, blob = _generate_data_key(services, scope, request, "GenerateDataKeyWithoutPlaintext")
    return {"CiphertextBlob": blob, "KeyId": key.arn, "KeyMaterialId": key.current_material_id}


def generate_random(services: Services, scope: RequestScope, request: Request) -> Response:
    _reject_recipient(request)
    size = request.get("NumberOfBytes")
    if size is None:
        raise ValidationException("NumberOfBytes is required.")
    if request.get("CustomKeyStoreId") is not None:
        # Custom key stores (docs/custom-key-stores.md): random bytes from the store's token.
        store_id = str(request["CustomKeyStoreId"])
        return {"Plaintext": random_from_store(services, scope, store_id, int(size))}
    return {"Plaintext": services.random_bytes(int(size))}
