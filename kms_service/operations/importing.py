"""GetParametersForImport, ImportKeyMaterial and DeleteImportedKeyMaterial: bring-your-own-key
material for keys created with ``Origin=EXTERNAL``, on any backend that declares the wrapping
algorithm (``capabilities.wrapping_algorithms``).

The wrapped material is unwrapped inside the key's backend (inside the token on an HSM): the
service never sees it. It is first unwrapped under a scratch id to compute its check value
(:func:`kms_service.operations.imported.check_value`), which decides whether it is the
material the key already has (a re-import) or new material, and only then under its real
KeyMaterialId. Rules and messages follow AWS's API reference and developer guide
(https://docs.aws.amazon.com/kms/latest/APIReference/API_ImportKeyMaterial.html,
https://docs.aws.amazon.com/kms/latest/developerguide/importing-keys.html); where AWS's exact
wording is not documented, docs/key-import.md says so.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from typing import Any

from backends.base import (
    BackendError,
    BackendUnavailableError,
    DecryptionFailedError,
    KeyBackend,
    MaterialNotFoundError,
    MaterialRejectedError,
    UnsupportedMechanismError,
)
from kms_service.domain.errors import (
    ExpiredImportTokenException,
    IncorrectKeyMaterialException,
    InvalidCiphertextException,
    InvalidImportTokenException,
    KeyUnavailableException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.creation import SECONDS_PER_DAY
from kms_service.operations.import_token import InvalidTokenError, open_token, seal_token
from kms_service.operations.imported import (
    DOES_NOT_EXPIRE,
    EXPIRES,
    IMPORTED,
    check_value,
    destroy_imported,
    summary_changes,
    supports_new_material,
)
from kms_service.operations.resolve import reload_key, require_state, resolve_key
from kms_service.store import ImportedMaterialRecord, KeyRecord, WrappingKeyRecord

Request = dict[str, Any]
Response = dict[str, Any]

#: The wrapping algorithms KMS accepts today; RSAES_PKCS1_V1_5 was withdrawn on 2023-10-10
#: and SM2PKE exists only in the China Regions.
SUPPORTED_WRAPPING_ALGORITHMS = frozenset(
    {"RSAES_OAEP_SHA_1", "RSAES_OAEP_SHA_256", "RSA_AES_KEY_WRAP_SHA_1", "RSA_AES_KEY_WRAP_SHA_256"}
)
PARAMETERS_VALIDITY_SECONDS = 24 * 3600.0
MAX_VALID_TO_DAYS = 365
#: Expired wrapping keys are destroyed (pair and row) this long after their expiry; until
#: then a stale token is answered ExpiredImportTokenException rather than "invalid".
WRAPPING_KEY_RETENTION_SECONDS = 30 * SECONDS_PER_DAY

INVALID_IMPORT_PARAMETERS = (
    "The request was rejected because the provided import token is invalid or is associated "
    "with a different KMS key."
)
EXPIRED_IMPORT_PARAMETERS = (
    "The request was rejected because the specified import token is expired."
)
INCORRECT_MATERIAL_MESSAGE = (
    "The request was rejected because the key material in the request is, expired, invalid, "
    "or does not meet expectations."
)


def _require_external(key: KeyRecord) -> None:
    """AWS's refusal for keys that cannot have imported material."""
    if key.origin != "EXTERNAL":
        raise UnsupportedOperationException(
            f"{key.arn} origin is {key.origin} which is not valid for this operation."
        )


def _require_importable(key: KeyRecord) -> None:
    """Origin, then state: a key pending deletion takes no material."""
    _require_external(key)
    require_state(key, allow=(KeyState.ENABLED, KeyState.DISABLED, KeyState.PENDING_IMPORT))


def get_parameters_for_import(
    services: Services, scope: RequestScope, request: Request
) -> Response:
    """A fresh RSA wrapping key pair in the key's backend and an import token for it, both
    valid 24 hours by the service clock."""
    algorithm = request["WrappingAlgorithm"]
    spec = request["WrappingKeySpec"]
    if algorithm == "RSAES_PKCS1_V1_5":
        raise ValidationException(
            "The RSAES_PKCS1_V1_5 wrapping algorithm is no longer supported. Use "
            "RSAES_OAEP_SHA_1, RSAES_OAEP_SHA_256, RSA_AES_KEY_WRAP_SHA_1 or "
            "RSA_AES_KEY_WRAP_SHA_256."
        )
    if algorithm == "SM2PKE" or spec == "SM2":
        raise ValidationException(
            "The SM2PKE wrapping algorithm and the SM2 wrapping key spec are available only "
            "in the China Regions."
        )
    key = resolve_key(services, scope, request["KeyId"])
    _require_importable(key)
    backend = services.backend(key.backend)
    capabilities = backend.capabilities
    if algorithm not in capabilities.wrapping_algorithms:
        raise UnsupportedOperationException(
            f"The {key.backend} key store of {key.arn} does not support the wrapping "
            f"algorithm {algorithm}."
        )
    if spec not in capabilities.wrapping_key_specs:
        raise UnsupportedOperationException(
            f"The {key.backend} key store of {key.arn} does not support the wrapping key "
            f"spec {spec}."
        )
    purge_expired_wrapping_keys(services)
    wrapping_key_id = secrets.token_hex(32)
    try:
        public_key = backend.create_wrapping_key(wrapping_key_id, spec)
    except UnsupportedMechanismError:
        raise UnsupportedOperationException(
            f"The {key.backend} key store of {key.arn} does not support the wrapping key "
            f"spec {spec}."
        ) from None
    except BackendError:
        raise KeyUnavailableException("The key store is unavailable.") from None
    now = services.clock.now()
    valid_to = now + PARAMETERS_VALIDITY_SECONDS
    try:
        with services.store.write():
            key = reload_key(services, key)
            _require_importable(key)
            services.store.insert_wrapping_key(
                WrappingKeyRecord(
                    wrapping_key_id,
                    key.account_id,
                    key.region,
                    key.key_id,
                    key.backend,
                    algorithm,
                    spec,
                    now,
                    valid_to,
                )
            )
    except BaseException:
        # The key changed meanwhile: the pair is nobody's.
        with contextlib.suppress(BackendError):
            backend.destroy_wrapping_key(wrapping_key_id)
        raise
    return {
        "KeyId": key.arn,
        "ImportToken": seal_token(services, key.arn, wrapping_key_id),
        "PublicKey": public_key,
        "ParametersValidTo": valid_to,
    }


def purge_expired_wrapping_keys(services: Services, cutoff: float | None = None) -> None:
    """Destroy wrapping key pairs (and their rows) that expired before ``cutoff`` (default:
    expired for longer than the retention; ``math.inf`` destroys them all)."""
    if cutoff is None:
        cutoff = services.clock.now() - WRAPPING_KEY_RETENTION_SECONDS
    for record in services.store.expired_wrapping_keys(cutoff):
        backend = services.backends.get(record.backend)
        if backend is not None:
            try:
                backend.destroy_wrapping_key(record.wrapping_key_id)
            except BackendError:
                continue  # retried at the next call
        with services.store.write():
            services.store.delete_wrapping_key(record.wrapping_key_id)


def _check_expiration(request: Request, now: float) -> tuple[str, float | None]:
    """ExpirationModel and ValidTo as AWS checks them; returns both."""
    model = request.get("ExpirationModel") or EXPIRES
    valid_to = request.get("ValidTo")
    if model == EXPIRES and valid_to is None:
        raise ValidationException(
            "A validTo date must be set if the ExpirationModel is KEY_MATERIAL_EXPIRES"
        )
    if model == DOES_NOT_EXPIRE and valid_to is not None:
        raise ValidationException(
            "A validTo date must not be set if the ExpirationModel is KEY_MATERIAL_DOES_NOT_EXPIRE"
        )
    if valid_to is not None and not now < valid_to <= now + MAX_VALID_TO_DAYS * SECONDS_PER_DAY:
        raise ValidationException(
            "The validTo date must be in the future and no more than 365 days from now."
        )
    return model, valid_to


def _wrapping_key(
    services: Services, key: KeyRecord, token: bytes, now: float
) -> WrappingKeyRecord:
    """The wrapping key the token names. Raises AWS's token errors."""
    try:
        wrapping_key_id = open_token(services, key.arn, token)
    except InvalidTokenError:
        raise InvalidImportTokenException(INVALID_IMPORT_PARAMETERS) from None
    record = services.store.get_wrapping_key(wrapping_key_id)
    if record is None or (record.account_id, record.region, record.key_id) != (
        key.account_id,
        key.region,
        key.key_id,
    ):
        raise InvalidImportTokenException(INVALID_IMPORT_PARAMETERS)
    if record.valid_to <= now:
        raise ExpiredImportTokenException(EXPIRED_IMPORT_PARAMETERS)
    return record


def _unwrap(
    backend: KeyBackend, material_id: str, key: KeyRecord, wrapping: WrappingKeyRecord, blob: bytes
) -> None:
    """Unwrap ``blob`` into ``material_id``, with AWS's errors for what goes wrong."""
    try:
        backend.unwrap_material(
            material_id, key.key_spec, wrapping.wrapping_key_id, wrapping.wrapping_algorithm, blob
        )
    except DecryptionFailedError:
        raise InvalidCiphertextException() from None
    except MaterialRejectedError:
        raise IncorrectKeyMaterialException(INCORRECT_MATERIAL_MESSAGE) from None
    except MaterialNotFoundError:
        raise InvalidImportTokenException(INVALID_IMPORT_PARAMETERS) from None
    except UnsupportedMechanismError:
        raise UnsupportedOperationException(
            f"The {key.backend} key store of {key.arn} cannot import {key.key_spec} key "
            f"material with {wrapping.wrapping_algorithm}."
        ) from None
    except BackendUnavailableError:
        raise KeyUnavailableException("The key store is unavailable.") from None


def _material_check_value(
    backend: KeyBackend, key: KeyRecord, wrapping: WrappingKeyRecord, blob: bytes
) -> bytes:
    """Unwrap under a scratch id, take the check value, destroy the scratch copy."""
    scratch = secrets.token_hex(32)
    try:
        _unwrap(backend, scratch, key, wrapping, blob)
        try:
            return check_value(backend, scratch, key.key_spec)
        except BackendError:
            raise KeyUnavailableException("The key store is unavailable.") from None
    finally:
        with contextlib.suppress(BackendError):
            backend.destroy_material(scratch)


def import_key_material(services: Services, scope: RequestScope, request: Request) -> Response:
    """Import, or re-import, key material; the key becomes Enabled once all its material is
    imported. Returns the key ARN and the material's KeyMaterialId."""
    key = resolve_key(services, scope, request["KeyId"])
    _require_importable(key)
    now = services.clock.now()
    model, valid_to = _check_expiration(request, now)
    import_type = request.get("ImportType")
    requested_id = request.get("KeyMaterialId")
    if requested_id is not None and import_type == "NEW_KEY_MATERIAL":
        raise ValidationException(
            "You cannot specify a key material ID with ImportType set to NEW_KEY_MATERIAL."
        )
    if requested_id is not None and key.key_spec != "SYMMETRIC_DEFAULT":
        raise ValidationException(
            "A key material ID can be specified only for symmetric encryption keys."
        )
    wrapping = _wrapping_key(services, key, request["ImportToken"], now)
    backend = services.backend(key.backend)
    blob = request["EncryptedKeyMaterial"]
    checked = _material_check_value(backend, key, wrapping, blob)
    created: str | None = None
    try:
        with services.store.write():
            key = reload_key(services, key)
            _require_importable(key)
            materials = services.store.imported_materials(key)
            target, pending = _target(key, materials, checked, import_type, requested_id)
            existing = next((m for m in materials if m.material_id == target), None)
            if existing is None or existing.import_state != IMPORTED:
                # New, or deleted/expired: the backend holds nothing under the id until now.
                created = target
                _unwrap(backend, target, key, wrapping, blob)
            services.store.put_imported_material(
                ImportedMaterialRecord(
                    material_id=target,
                    account_id=key.account_id,
                    region=key.region,
                    key_id=key.key_id,
                    import_state=IMPORTED,
                    pending_rotation=pending,
                    expiration_model=model,
                    valid_to=valid_to,
                    description=request.get("KeyMaterialDescription")
                    or (existing.description if existing is not None else ""),
                    check_value=checked,
                    imported=now,
                )
            )
            if existing is None and not pending:
                services.store.add_material(key, target, now, None)
                key = reload_key(services, key)
            services.store.update_key(
                key, **summary_changes(key, services.store.imported_materials(key))
            )
    except BaseException:
        # The transaction did not commit: what was unwrapped for it is nobody's.
        if created is not None:
            with contextlib.suppress(BackendError):
                backend.destroy_material(created)
        raise
    return {"KeyId": key.arn, "KeyMaterialId": target}


def _target(
    key: KeyRecord,
    materials: list[ImportedMaterialRecord],
    checked: bytes,
    import_type: str | None,
    requested_id: str | None,
) -> tuple[str, bool]:
    """Which KeyMaterialId the material goes to, and whether it awaits rotation.

    The first material of a key gets a fresh id. Later, EXISTING_KEY_MATERIAL (the default)
    must be material the key already has (the one named by ``requested_id``, if given), and
    NEW_KEY_MATERIAL must be material it does not have, on a key that can rotate.
    """
    same = [m for m in materials if hmac.compare_digest(m.check_value, checked)]
    if not materials:
        return secrets.token_hex(32), False
    if import_type == "NEW_KEY_MATERIAL":
        if not supports_new_material(key):
            raise UnsupportedOperationException(
                f"{key.arn} does not support importing new key material: asymmetric, HMAC and "
                "multi-Region keys keep the key material they were first imported with."
            )
        if same:
            raise IncorrectKeyMaterialException(INCORRECT_MATERIAL_MESSAGE)
        return secrets.token_hex(32), True
    if requested_id is not None:
        # AWS checks that the named material is associated with the key and is this one.
        same = [m for m in same if m.material_id == requested_id]
    if not same:
        raise IncorrectKeyMaterialException(INCORRECT_MATERIAL_MESSAGE)
    return same[0].material_id, same[0].pending_rotation


def delete_imported_key_material(
    services: Services, scope: RequestScope, request: Request
) -> Response:
    """Destroy imported material (the current one unless ``KeyMaterialId`` names another);
    the key goes to PendingImport unless it is pending deletion."""
    key = resolve_key(services, scope, request["KeyId"])
    _require_external(key)
    requested_id = request.get("KeyMaterialId")
    with services.store.write():
        key = reload_key(services, key)
        materials = services.store.imported_materials(key)
        wanted = requested_id or key.current_material_id
        target = next((m for m in materials if m.material_id == wanted), None)
        if target is None:
            if requested_id is not None:
                raise NotFoundException(
                    f"Key material {requested_id} is not associated with the key {key.arn}."
                )
            return {"KeyId": key.arn}  # nothing was ever imported: no effect, as on AWS
        if target.import_state == IMPORTED:
            destroy_imported(services, key, target)
        services.store.update_key(
            key, **summary_changes(key, services.store.imported_materials(key))
        )
    return {"KeyId": key.arn, "KeyMaterialId": target.material_id}
