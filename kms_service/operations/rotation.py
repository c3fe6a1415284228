"""Key rotation: automatic (on a period, applied lazily) and on demand; the rotation list."""

from __future__ import annotations

import contextlib
from typing import Any

from backends.base import BackendError
from kms_service.domain.errors import (
    InvalidMarkerException,
    KmsError,
    KMSInvalidStateException,
    LimitExceededException,
    UnsupportedOperationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.creation import SECONDS_PER_DAY
from kms_service.operations.imported import rotate_to_imported, rotation_details
from kms_service.operations.material import new_material
from kms_service.operations.multi_region import require_not_replica
from kms_service.operations.pagination import decode_marker, page_limit, paginate
from kms_service.operations.resolve import (
    reload_key,
    require_customer_managed,
    require_state,
    resolve_key,
)
from kms_service.store import KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]
DEFAULT_PERIOD_DAYS = 365


def enable_key_rotation(services: Services, scope: RequestScope, request: Request) -> None:
    """Turn automatic rotation on, or change its period (the schedule moves with it)."""
    period = int(request.get("RotationPeriodInDays") or DEFAULT_PERIOD_DAYS)
    key = resolve_key(services, scope, request["KeyId"])
    require_symmetric_encryption_key(key)
    require_not_replica(services, key)
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        refuse_imported(key)
        require_state(key, allow=(KeyState.ENABLED,))
        now = services.clock.now()
        if key.rotation_enabled and key.next_rotation_date is not None:
            anchor = key.next_rotation_date - (key.rotation_period_days or period) * SECONDS_PER_DAY
        else:
            anchor = now
        services.store.update_key(
            key,
            rotation_enabled=True,
            rotation_period_days=period,
            next_rotation_date=max(anchor + period * SECONDS_PER_DAY, now),
        )


def disable_key_rotation(services: Services, scope: RequestScope, request: Request) -> None:
    key = resolve_key(services, scope, request["KeyId"])
    require_symmetric_encryption_key(key)
    require_not_replica(services, key)
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        refuse_imported(key)
        require_state(key, allow=(KeyState.ENABLED,))
        services.store.update_key(
            key, rotation_enabled=False, rotation_period_days=None, next_rotation_date=None
        )


def get_key_rotation_status(services: Services, scope: RequestScope, request: Request) -> Response:
    """Works in every state; a key pending deletion reports rotation off, as on AWS."""
    key = resolve_key(services, scope, request["KeyId"])
    require_symmetric_encryption_key(key)
    enabled = key.rotation_enabled and key.state != KeyState.PENDING_DELETION
    response: Response = {"KeyId": key.arn, "KeyRotationEnabled": enabled}
    if enabled:
        response["RotationPeriodInDays"] = key.rotation_period_days
        response["NextRotationDate"] = key.next_rotation_date
    return response


def rotate_key_on_demand(services: Services, scope: RequestScope, request: Request) -> Response:
    """New current material now; the automatic schedule is left as it was."""
    key = resolve_key(services, scope, request["KeyId"])
    require_symmetric_encryption_key(key)
    require_customer_managed(key)
    require_not_replica(services, key)
    require_state(key, allow=(KeyState.ENABLED,))
    limit = services.settings.on_demand_rotation_limit
    # Checked before material is created too, so a refused rotation leaves none behind.
    _check_rotation_limit(key, limit)
    if key.origin == "EXTERNAL":
        # Imported keys rotate to material imported beforehand as NEW_KEY_MATERIAL.
        with services.store.write():
            key = reload_key(services, key)
            require_state(key, allow=(KeyState.ENABLED,))
            _check_rotation_limit(key, limit)
            rotate_to_imported(services, key)
        return {"KeyId": key.arn}
    material_id = new_material(services, key.backend)
    try:
        with services.store.write():
            key = reload_key(services, key)
            require_state(key, allow=(KeyState.ENABLED,))
            _check_rotation_limit(key, limit)
            services.store.add_material(key, material_id, services.clock.now(), "ON_DEMAND")
            services.store.update_key(key, on_demand_rotations=key.on_demand_rotations + 1)
    except KmsError:
        # Another request changed the key meanwhile: the new material is nobody's.
        with contextlib.suppress(BackendError):
            services.backend(key.backend).destroy_material(material_id)
        raise
    return {"KeyId": key.arn}


def refuse_imported(key: KeyRecord) -> None:
    """Automatic rotation is not offered for keys with imported material (AWS's wording)."""
    if key.origin == "EXTERNAL":
        raise UnsupportedOperationException(
            f"{key.arn} origin is EXTERNAL which is not valid for this operation."
        )


def require_symmetric_encryption_key(key: KeyRecord) -> None:
    """Rotation is for symmetric encryption keys only: AWS refuses asymmetric and HMAC keys
    with a message-less UnsupportedOperationException (docs/key-types.md)."""
    if key.key_spec != "SYMMETRIC_DEFAULT":
        raise UnsupportedOperationException()
    # --- custom key stores (docs/custom-key-stores.md): AWS does not rotate AWS_CLOUDHSM keys
    # and answers as for asymmetric keys.
    if key.origin == "AWS_CLOUDHSM":
        raise UnsupportedOperationException()


def _check_rotation_limit(key: KeyRecord, limit: int) -> None:
    """Raise AWS's LimitExceededException when ``key`` has used its on-demand rotations."""
    if key.on_demand_rotations >= limit:
        raise LimitExceededException(
            "The on-demand rotations limit has been reached for the given keyId. "
            f"No more on-demand rotations can be performed for this key: {key.arn}"
        )


def list_key_rotations(services: Services, scope: RequestScope, request: Request) -> Response:
    key = resolve_key(services, scope, request["KeyId"])
    if key.state == KeyState.PENDING_IMPORT:
        raise KMSInvalidStateException(f"{key.arn} is pending import.")
    include_all = request.get("IncludeKeyMaterial") == "ALL_KEY_MATERIAL"
    limit = page_limit(request, default=100, maximum=1000)
    after = decode_marker(request.get("Marker"))
    if after is not None and not after.isdigit():
        raise InvalidMarkerException("Invalid marker")
    materials = services.store.materials(key)
    current_seq = materials[-1].seq if materials else -1
    rows = [
        m
        for m in materials
        if (include_all or m.rotation_type is not None) and (after is None or m.seq > int(after))
    ]
    details, pending = rotation_details(services, key) if key.origin == "EXTERNAL" else ({}, [])
    shown = rows[:limit]
    items = []
    for material in shown:
        entry: dict[str, Any] = {
            "KeyId": key.key_id,
            "KeyMaterialId": material.material_id,
            "KeyMaterialState": "CURRENT" if material.seq == current_seq else "NON_CURRENT",
        }
        if material.rotation_type is not None:
            entry["RotationDate"] = material.created
            entry["RotationType"] = material.rotation_type
        entry.update(details.get(material.material_id, {}))
        items.append(entry)
    last = str(shown[-1].seq) if shown else None
    if include_all and len(rows) <= limit:
        # Material imported for a future rotation closes the last page.
        items.extend(pending)
    return paginate(rows, limit, last, "Rotations", items)
