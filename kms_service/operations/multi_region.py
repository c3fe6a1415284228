"""Multi-Region keys: ReplicateKey, UpdatePrimaryRegion, and the deletion rules of a primary
that still has replicas (rules and their AWS sources: docs/multi-region-keys.md).

The keys of a multi-Region key are rows of ``keys`` with the same ``mrk-`` id in several
regions of one account; ``multi_region_members`` says which is the primary. They share their
key material rows (so a ciphertext or signature made in one region is accepted in the others:
a blob names its key by bare id, which resolves in the caller's region) and their automatic
rotation settings; the store keeps both in step (:mod:`kms_service.store.metadata`). Every
region of a mock-kms process is served by the same backends, so a replica uses the very
material objects of its primary; a backend that could not share them across regions says so
in its capabilities and its keys are refused.
"""

from __future__ import annotations

from typing import Any

from kms_service.domain.errors import (
    AlreadyExistsException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations import keys
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.creation import default_policy
from kms_service.operations.metadata import key_metadata
from kms_service.operations.policy import check_policy
from kms_service.operations.resolve import (
    apply_due_lifecycle,
    reload_key,
    require_customer_managed,
    require_state,
    resolve_key,
)
from kms_service.operations.tags import check_new_tags
from kms_service.store import KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]
PRIMARY = "PRIMARY"
REPLICA = "REPLICA"


def role(services: Services, key: KeyRecord) -> str | None:
    """``PRIMARY`` or ``REPLICA`` for a multi-Region key, None for a single-Region key."""
    if not key.multi_region:
        return None
    for member in services.store.multi_region_members(key.account_id, key.key_id):
        if member.region == key.region:
            return member.role
    return PRIMARY  # a multi-Region key without replicas is its own primary


def has_replicas(services: Services, key: KeyRecord) -> bool:
    """Whether ``key`` is a multi-Region primary with at least one replica."""
    members = services.store.multi_region_members(key.account_id, key.key_id)
    return role(services, key) == PRIMARY and any(m.role == REPLICA for m in members)


def require_primary(services: Services, key: KeyRecord) -> None:
    """Raise AWS's UnsupportedOperationException unless ``key`` is a multi-Region primary."""
    if role(services, key) != PRIMARY:
        raise UnsupportedOperationException(f"{key.arn} is not a multi-region primary key.")


def require_not_replica(services: Services, key: KeyRecord) -> None:
    """Automatic and on-demand rotation are managed on the primary only: raise AWS's
    UnsupportedOperationException for a replica."""
    if role(services, key) == REPLICA:
        raise UnsupportedOperationException(f"{key.arn} is not a multi-region primary key.")


def _region_key(services: Services, account_id: str, region: str, key_id: str) -> KeyRecord | None:
    """The key ``key_id`` in ``region``, after its due deletion or rotation, if it exists."""
    key = services.store.get_key(account_id, region, key_id)
    return None if key is None else apply_due_lifecycle(services, key)


def replicate_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """ReplicateKey: a replica of a multi-Region primary in another region of the account,
    with the primary's key id, spec, usage, origin, material and rotation settings, and its
    own description, policy and tags. Enabled at once (AWS shows ``Creating`` for a few
    seconds first; docs/multi-region-keys.md)."""
    primary = resolve_key(services, scope, request["KeyId"])
    require_primary(services, primary)
    replica_region = str(request["ReplicaRegion"])
    if replica_region == primary.region:
        raise ValidationException(
            f"The replica Region {replica_region} is the Region of the primary key "
            f"{primary.arn}; a replica must be in another Region."
        )
    require_state(primary, allow=(KeyState.ENABLED,))
    if primary.origin == "EXTERNAL":
        # AWS creates such a replica PendingImport, to take the same material by its own
        # import; imported material here is tracked per key, so it is not offered yet
        # (README, "Supported operations and limits").
        raise UnsupportedOperationException(
            f"{primary.arn} has imported key material; mock-kms does not replicate "
            "multi-Region keys with imported key material."
        )
    backend = services.backend(primary.backend)
    if not backend.capabilities.shares_material_across_regions:
        raise UnsupportedOperationException(
            f"{primary.arn} is in the {primary.backend} key store, which cannot share key "
            "material with another Region, so it cannot be replicated."
        )
    policy = request.get("Policy")
    if policy is not None:
        check_policy(policy)
    tags = check_new_tags(request.get("Tags") or [], existing=())
    replica_arn = f"arn:aws:kms:{replica_region}:{primary.account_id}:key/{primary.key_id}"
    _region_key(services, primary.account_id, replica_region, primary.key_id)
    with services.store.write():
        primary = reload_key(services, primary)
        require_primary(services, primary)
        require_state(primary, allow=(KeyState.ENABLED,))
        if services.store.get_key(primary.account_id, replica_region, primary.key_id):
            raise AlreadyExistsException(f"{replica_arn} already exists.")
        replica = KeyRecord(
            account_id=primary.account_id,
            region=replica_region,
            key_id=primary.key_id,
            description=str(request.get("Description", "")),
            key_usage=primary.key_usage,
            key_spec=primary.key_spec,
            origin=primary.origin,
            key_manager=primary.key_manager,
            state=KeyState.ENABLED,
            creation_date=services.clock.now(),
            deletion_date=None,
            multi_region=True,
            backend=primary.backend,
            rotation_enabled=primary.rotation_enabled,
            rotation_period_days=primary.rotation_period_days,
            next_rotation_date=primary.next_rotation_date,
            on_demand_rotations=primary.on_demand_rotations,
            policy=policy or default_policy(primary.account_id),
        )
        services.store.insert_key(replica)
        services.store.copy_materials(primary, replica)
        if tags:
            services.store.put_tags(replica, tags)
        store = services.store
        store.set_multi_region_member(primary.account_id, primary.key_id, primary.region, PRIMARY)
        store.set_multi_region_member(primary.account_id, primary.key_id, replica_region, REPLICA)
        created = store.get_key(primary.account_id, replica_region, primary.key_id)
    assert created is not None  # inserted in this transaction
    return {
        "ReplicaKeyMetadata": key_metadata(created, services.store),
        "ReplicaPolicy": created.policy,
        "ReplicaTags": [{"TagKey": k, "TagValue": v} for k, v in services.store.tags(created)],
    }


def update_primary_region(services: Services, scope: RequestScope, request: Request) -> None:
    """UpdatePrimaryRegion: the replica in ``PrimaryRegion`` becomes the primary and the
    primary (``KeyId``, in the caller's region) a replica; both must be Enabled. Synchronous:
    the keys never show AWS's transient ``Updating`` state (docs/multi-region-keys.md)."""
    primary = resolve_key(services, scope, request["KeyId"])
    require_primary(services, primary)
    new_region = str(request["PrimaryRegion"])
    if new_region == primary.region:
        raise ValidationException(
            f"{primary.arn} is already the primary key; PrimaryRegion must name the Region "
            "of one of its replica keys."
        )
    require_state(primary, allow=(KeyState.ENABLED,))
    target_arn = f"arn:aws:kms:{new_region}:{primary.account_id}:key/{primary.key_id}"
    target = _region_key(services, primary.account_id, new_region, primary.key_id)
    if target is None or role(services, target) != REPLICA:
        raise NotFoundException(f"Key '{target_arn}' does not exist")
    require_state(target, allow=(KeyState.ENABLED,))
    with services.store.write():
        primary = reload_key(services, primary)
        target = reload_key(services, target)
        require_primary(services, primary)
        require_state(primary, allow=(KeyState.ENABLED,))
        if role(services, target) != REPLICA:
            raise NotFoundException(f"Key '{target_arn}' does not exist")
        require_state(target, allow=(KeyState.ENABLED,))
        store = services.store
        store.set_multi_region_member(primary.account_id, primary.key_id, new_region, PRIMARY)
        store.set_multi_region_member(primary.account_id, primary.key_id, primary.region, REPLICA)


def schedule_key_deletion(services: Services, scope: RequestScope, request: Request) -> Response:
    """ScheduleKeyDeletion. A multi-Region primary that still has replicas goes to
    PendingReplicaDeletion, with no deletion date: its window begins when its last replica is
    deleted (the store starts it). Every other key: :func:`keys.schedule_key_deletion`."""
    window = keys.pending_window(request)
    key = resolve_key(services, scope, request["KeyId"])
    if not has_replicas(services, key):
        return keys.schedule_key_deletion(services, scope, request)
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        if key.state == KeyState.PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        if key.state == KeyState.PENDING_REPLICA_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is pending replica deletion.")
        if not has_replicas(services, key):  # the last replica went meanwhile
            return keys.schedule_key_deletion(services, scope, request)
        services.store.update_key(key, state=KeyState.PENDING_REPLICA_DELETION, deletion_date=None)
        services.store.set_multi_region_member(
            key.account_id, key.key_id, key.region, PRIMARY, pending_window_days=window
        )
    return {
        "KeyId": key.arn,
        "KeyState": KeyState.PENDING_REPLICA_DELETION,
        "PendingWindowInDays": window,
    }


def cancel_key_deletion(services: Services, scope: RequestScope, request: Request) -> Response:
    """CancelKeyDeletion, for a primary in PendingReplicaDeletion too: it comes back
    Disabled, as every key whose deletion is cancelled. Others:
    :func:`keys.cancel_key_deletion`."""
    key = resolve_key(services, scope, request["KeyId"])
    if key.state != KeyState.PENDING_REPLICA_DELETION:
        return keys.cancel_key_deletion(services, scope, request)
    with services.store.write():
        key = reload_key(services, key)
        if key.state != KeyState.PENDING_REPLICA_DELETION:
            return keys.cancel_key_deletion(services, scope, request)
        services.store.update_key(key, state=KeyState.DISABLED, deletion_date=None)
        services.store.set_multi_region_member(key.account_id, key.key_id, key.region, PRIMARY)
    return {"KeyId": key.arn}
