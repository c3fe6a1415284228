"""Reconciling the store with a seed document: create what is missing, update what differs,
never delete what the file does not mention.

Fields a seed leaves out are not managed: a key's description, state, rotation, policy and
tags change only where the file declares them, tags are added or updated but never removed,
and key material is only ever appended (old ciphertexts must keep decrypting). Rotation and
deletion dates are initial values: they apply when a key is created or when rotation is
switched on or its period changes, so that a key rotated at run time is not rewound at the
next start.

A material version without an explicit id gets ``HMAC-SHA256(material, key id)`` as its
KeyMaterialId: the same seed gives the same ids everywhere, so ciphertexts made on one
machine decrypt on another seeded from the same file, and the id reveals nothing of the key.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from dataclasses import dataclass, field

from backends.base import BackendError, KeyBackend, MaterialRejectedError
from kms_service.domain.errors import KmsError
from kms_service.domain.key_states import KeyState
from kms_service.operations import RequestScope, Services
from kms_service.operations.aliases import check_alias_name
from kms_service.operations.creation import default_policy
from kms_service.operations.imported import (
    DOES_NOT_EXPIRE,
    IMPORTED,
    check_value,
    summary_changes,
)
from kms_service.operations.material import new_material
from kms_service.operations.policy import check_policy
from kms_service.operations.tags import check_new_tags
from kms_service.seeding.model import Position, SeedAlias, SeedDocument, SeedKey
from kms_service.store import AliasRecord, ImportedMaterialRecord, KeyRecord

log = logging.getLogger("mock_kms.seed")
SECONDS_PER_DAY = 86400.0
DEFAULT_PERIOD_DAYS = 365
DEFAULT_DELETION_WINDOW_DAYS = 30


@dataclass
class SeedReport:
    """What a reconciliation did; ``changes`` is empty when the store already matched."""

    changes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, list[str]]:
        return {"changes": self.changes, "warnings": self.warnings}


def seeded_material_id(material: bytes, key_id: str) -> str:
    """The KeyMaterialId of seeded material that has no explicit id (see the module doc)."""
    return hmac.new(
        material, b"mock-kms seed material/" + key_id.encode(), hashlib.sha256
    ).hexdigest()


def apply_seed(services: Services, document: SeedDocument) -> SeedReport:
    """Reconcile ``services``' store with ``document``. Raises :class:`SeedError` (the store
    keeps what was applied before the failing entry; the next start resumes)."""
    report = SeedReport(warnings=list(document.warnings))
    for key in document.keys:
        _reconcile_key(services, key, report)
    for alias in document.aliases:
        _ensure_alias_entry(services, alias, report)
    return report


def _scope(services: Services, account_id: str | None, region: str | None) -> RequestScope:
    account = account_id or services.settings.account_id
    return RequestScope(account, region or services.settings.region, f"arn:aws:iam::{account}:root")


def _reconcile_key(services: Services, seed: SeedKey, report: SeedReport) -> None:
    scope = _scope(services, seed.account_id, seed.region)
    backend_name = seed.backend or services.default_backend
    if backend_name not in services.backends:
        raise seed.position.error(
            f"backend {backend_name} is not configured in this server (start it with "
            f"--backend {backend_name})",
            "backend",
        )
    _check_key_fields(seed)
    existing = services.store.get_key(scope.account_id, scope.region, seed.key_id)
    if existing is None:
        _create_key(services, scope, seed, backend_name, report)
    else:
        _update_key(services, existing, seed, report)
    for alias_name, position in seed.aliases:
        _ensure_alias(services, scope, alias_name, seed.key_id, position, report)


def _check_key_fields(seed: SeedKey) -> None:
    if seed.policy is not None:
        try:
            check_policy(seed.policy)
        except KmsError as exc:
            raise seed.position.error(exc.message or exc.code, "policy") from None
    if seed.tags is not None:
        try:
            check_new_tags([{"TagKey": k, "TagValue": v} for k, v in seed.tags], existing=())
        except KmsError as exc:
            raise seed.position.error(exc.message or exc.code, "tags") from None


def _import_materials(
    services: Services, seed: SeedKey, backend_name: str, key: KeyRecord | None
) -> list[tuple[str, float | None, str | None]]:
    """Put the seed's material versions that ``key`` lacks into the backend; returns
    ``(material id, created, rotation type)`` for each one to add, in order."""
    backend = services.backend(backend_name)
    owned = {m.material_id for m in services.store.materials(key)} if key else set()
    missing = []
    for material in seed.materials:
        material_id = material.material_id or seeded_material_id(material.material, seed.key_id)
        if material_id in owned:
            if material.material_id is not None:
                _check_same_material(backend, material_id, material.material, material.position)
            continue
        owner = services.store.material_owner(material_id)
        if owner is not None:
            raise material.position.error(
                f"KeyMaterialId {material_id} already belongs to key {owner[2]}", "id"
            )
        if not backend.capabilities.exportable:
            raise material.position.error(
                f"key material can only be seeded on the software backend, not {backend_name}"
            )
        try:
            backend.import_material(material_id, seed.key_spec, material.material)
        except MaterialRejectedError as exc:
            raise material.position.error(str(exc), "key") from None
        except BackendError as exc:
            raise material.position.error(f"the key store failed: {exc}") from None
        missing.append((material_id, material.created, material.rotation_type))
    return missing


def _new_material(services: Services, backend_name: str, seed: SeedKey) -> str:
    """Fresh material of the seed's key spec, generated in the backend; returns its id."""
    if seed.key_spec not in services.backend(backend_name).capabilities.key_specs:
        raise seed.position.error(
            f"the {backend_name} backend does not serve {seed.key_spec} keys", "key_spec"
        )
    return new_material(services, backend_name, seed.key_spec)


def _record_imported(
    services: Services, key: KeyRecord, material_ids: list[str], now: float
) -> None:
    """Seeded material of an EXTERNAL key counts as imported material that does not expire,
    with its check value, so it can be deleted and re-imported like any other."""
    backend = services.backend(key.backend)
    for material_id in material_ids:
        services.store.put_imported_material(
            ImportedMaterialRecord(
                material_id=material_id,
                account_id=key.account_id,
                region=key.region,
                key_id=key.key_id,
                import_state=IMPORTED,
                pending_rotation=False,
                expiration_model=DOES_NOT_EXPIRE,
                valid_to=None,
                description="",
                check_value=check_value(backend, material_id, key.key_spec),
                imported=now,
            )
        )
    current = services.store.get_key(key.account_id, key.region, key.key_id) or key
    services.store.update_key(
        current, **summary_changes(current, services.store.imported_materials(current))
    )


def _check_same_material(
    backend: KeyBackend, material_id: str, material: bytes, at: Position
) -> None:
    if not backend.capabilities.exportable:
        return
    try:
        same = hmac.compare_digest(backend.export_material(material_id), material)
    except BackendError:
        return
    if not same:
        raise at.error(f"KeyMaterialId {material_id} already holds other key material", "key")


def _create_key(
    services: Services, scope: RequestScope, seed: SeedKey, backend_name: str, report: SeedReport
) -> None:
    now = services.clock.now()
    created = seed.creation_date if seed.creation_date is not None else now
    materials = _import_materials(services, seed, backend_name, None)
    if not materials and seed.origin == "AWS_KMS":
        materials = [(_new_material(services, backend_name, seed), created, None)]
    state = seed.state or (KeyState.PENDING_IMPORT if not materials else KeyState.ENABLED)
    if state != KeyState.PENDING_IMPORT and not materials:
        raise seed.position.error(f"an EXTERNAL key without material cannot be {state}", "state")
    deletion_date = None
    if state == KeyState.PENDING_DELETION:
        deletion_date = seed.deletion_date or now + DEFAULT_DELETION_WINDOW_DAYS * SECONDS_PER_DAY
    rotation_enabled, period, next_date = False, None, None
    if seed.rotation is not None and seed.rotation.enabled:
        rotation_enabled = True
        period = seed.rotation.period_days or DEFAULT_PERIOD_DAYS
        anchor = max((c for _, c, _ in materials if c is not None), default=created)
        next_date = seed.rotation.next_rotation_date or anchor + period * SECONDS_PER_DAY
    record = KeyRecord(
        account_id=scope.account_id,
        region=scope.region,
        key_id=seed.key_id,
        description=seed.description or "",
        key_usage=seed.key_usage,
        key_spec=seed.key_spec,
        origin=seed.origin,
        key_manager="CUSTOMER",
        state=state,
        creation_date=created,
        deletion_date=deletion_date,
        multi_region=seed.key_id.startswith("mrk-"),
        backend=backend_name,
        rotation_enabled=rotation_enabled,
        rotation_period_days=period,
        next_rotation_date=next_date,
        on_demand_rotations=0,
        policy=seed.policy or default_policy(scope.account_id),
    )
    with services.store.write():
        services.store.insert_key(record)
        for material_id, material_created, rotation_type in materials:
            services.store.add_material(
                record, material_id, material_created or created, rotation_type
            )
        if seed.tags:
            services.store.put_tags(record, seed.tags)
        if seed.origin == "EXTERNAL":
            _record_imported(services, record, [m for m, _, _ in materials], now)
    report.changes.append(
        f"created key {record.arn} ({seed.key_spec}, {state}, {len(materials)} material)"
    )


def _update_key(services: Services, key: KeyRecord, seed: SeedKey, report: SeedReport) -> None:
    if seed.backend is not None and seed.backend != key.backend:
        raise seed.position.error(
            f"key {key.key_id} exists on the {key.backend} backend; keys cannot move "
            f"to {seed.backend}",
            "backend",
        )
    if seed.origin != key.origin:
        raise seed.position.error(f"key {key.key_id} exists with origin {key.origin}", "origin")
    if (seed.key_spec, seed.key_usage) != (key.key_spec, key.key_usage):
        raise seed.position.error(
            f"key {key.key_id} exists as a {key.key_spec} {key.key_usage} key; a key's spec "
            "and usage cannot change",
            "key_spec",
        )
    materials = _import_materials(services, seed, key.backend, key)
    now = services.clock.now()
    changes: dict[str, object] = {}
    if seed.description is not None and seed.description != key.description:
        changes["description"] = seed.description
    if materials and key.state == KeyState.PENDING_IMPORT:
        changes["state"] = KeyState.ENABLED
    changes.update(_state_changes(key, seed, now))
    changes.update(_rotation_changes(key, seed, now))
    if seed.policy is not None and not _same_policy(key.policy, seed):
        changes["policy"] = seed.policy
    tags = dict(services.store.tags(key))
    new_tags = [(k, v) for k, v in seed.tags or () if tags.get(k) != v]
    if not (changes or materials or new_tags):
        return
    with services.store.write():
        for material_id, created, rotation_type in materials:
            services.store.add_material(
                key, material_id, created or now, rotation_type or "AUTOMATIC"
            )
        if key.origin == "EXTERNAL" and materials:
            _record_imported(services, key, [m for m, _, _ in materials], now)
        if changes:
            services.store.update_key(key, **changes)
        if new_tags:
            services.store.put_tags(key, new_tags)
    what = sorted(changes) + (["material"] if materials else []) + (["tags"] if new_tags else [])
    report.changes.append(f"updated key {key.arn}: {', '.join(what)}")


def _state_changes(key: KeyRecord, seed: SeedKey, now: float) -> dict[str, object]:
    if seed.state is None or key.state == KeyState.PENDING_IMPORT:
        return {}
    if seed.state == KeyState.PENDING_DELETION:
        if key.state != KeyState.PENDING_DELETION:
            window = DEFAULT_DELETION_WINDOW_DAYS * SECONDS_PER_DAY
            return {
                "state": KeyState.PENDING_DELETION,
                "deletion_date": seed.deletion_date or now + window,
            }
        if seed.deletion_date is not None and seed.deletion_date != key.deletion_date:
            return {"deletion_date": seed.deletion_date}
        return {}
    if seed.state != key.state:
        return {"state": seed.state, "deletion_date": None}
    return {}


def _rotation_changes(key: KeyRecord, seed: SeedKey, now: float) -> dict[str, object]:
    rotation = seed.rotation
    if rotation is None:
        return {}
    if not rotation.enabled:
        if key.rotation_enabled:
            return {
                "rotation_enabled": False,
                "rotation_period_days": None,
                "next_rotation_date": None,
            }
        return {}
    period = rotation.period_days or key.rotation_period_days or DEFAULT_PERIOD_DAYS
    if key.rotation_enabled and key.rotation_period_days == period:
        return {}
    if rotation.next_rotation_date is not None:
        next_date = rotation.next_rotation_date
    elif key.rotation_enabled and key.next_rotation_date is not None:
        old = float(key.rotation_period_days or DEFAULT_PERIOD_DAYS)
        next_date = key.next_rotation_date + (period - old) * SECONDS_PER_DAY
    else:
        next_date = now + period * SECONDS_PER_DAY
    return {
        "rotation_enabled": True,
        "rotation_period_days": period,
        "next_rotation_date": next_date,
    }


def _same_policy(current: str, seed: SeedKey) -> bool:
    if not seed.policy_is_document:
        return current == seed.policy
    try:
        return bool(json.loads(current) == json.loads(seed.policy or ""))
    except ValueError:
        return False


def _ensure_alias_entry(services: Services, alias: SeedAlias, report: SeedReport) -> None:
    scope = _scope(services, alias.account_id, alias.region)
    if services.store.get_key(scope.account_id, scope.region, alias.target_key_id) is None:
        raise alias.position.error(
            f"target key {alias.target_key_id} does not exist in {scope.account_id}/"
            f"{scope.region} (declare it under keys)",
            "target",
        )
    _ensure_alias(services, scope, alias.name, alias.target_key_id, alias.position, report)


def _ensure_alias(
    services: Services,
    scope: RequestScope,
    name: str,
    key_id: str,
    position: Position,
    report: SeedReport,
) -> None:
    try:
        check_alias_name(name)
    except KmsError as exc:
        message = exc.message or "alias names under alias/aws/ are reserved for AWS managed keys"
        raise position.error(message) from None
    now = services.clock.now()
    with services.store.write():
        alias = services.store.get_alias(scope.account_id, scope.region, name)
        if alias is None:
            services.store.insert_alias(
                AliasRecord(scope.account_id, scope.region, name, key_id, now, now)
            )
            report.changes.append(f"created alias {scope.alias_arn(name)} -> {key_id}")
        elif alias.target_key_id != key_id:
            services.store.retarget_alias(alias, key_id, now)
            report.changes.append(f"retargeted alias {scope.alias_arn(name)} -> {key_id}")
