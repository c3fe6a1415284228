"""Key lifecycle operations: create, describe, list, describe-update, enable/disable, deletion."""

from __future__ import annotations

from typing import Any

from kms_service.domain.errors import (
    KMSInvalidStateException,
    UnsupportedOperationException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.creation import SECONDS_PER_DAY, create_key_record
from kms_service.operations.custom_key_stores import cluster_of, key_store_for_new_key
from kms_service.operations.imported import material_complete
from kms_service.operations.key_kinds import (
    ALLOWED_USAGES,
    COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS,
    COMMERCIAL_KEY_SPECS,
    commercial_enum_error,
    require_backend_spec,
)
from kms_service.operations.metadata import key_metadata
from kms_service.operations.pagination import decode_marker, page_limit, paginate
from kms_service.operations.policy import check_lockout, check_policy
from kms_service.operations.resolve import (
    apply_due_lifecycle,
    reload_key,
    require_customer_managed,
    require_state,
    resolve_key,
)
from kms_service.operations.tags import check_new_tags

Request = dict[str, Any]
Response = dict[str, Any]


def _key_spec_and_usage(request: Request) -> tuple[str, str]:
    """The requested key spec and usage, checked against each other as AWS checks them
    (rules and sources in docs/key-types.md)."""
    if request.get("KeySpec") and request.get("CustomerMasterKeySpec"):
        raise ValidationException(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
            "CustomerMasterKeySpec parameter is deprecated. Use KeySpec parameter instead."
        )
    if request.get("KeySpec"):
        key_spec = str(request["KeySpec"])
        if key_spec == "SM2":
            raise commercial_enum_error("keySpec", key_spec, COMMERCIAL_KEY_SPECS)
        if key_spec not in COMMERCIAL_KEY_SPECS:
            raise UnsupportedOperationException(f"KeySpec {key_spec} is not supported by mock-kms.")
    elif request.get("CustomerMasterKeySpec"):
        key_spec = str(request["CustomerMasterKeySpec"])
        if key_spec not in COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS:
            raise commercial_enum_error(
                "customerMasterKeySpec", key_spec, COMMERCIAL_CUSTOMER_MASTER_KEY_SPECS
            )
    else:
        key_spec = "SYMMETRIC_DEFAULT"
    key_usage = request.get("KeyUsage")
    if key_usage is None:
        if key_spec != "SYMMETRIC_DEFAULT":
            raise ValidationException(
                "You must specify a KeyUsage value for all KMS keys except for symmetric "
                "encryption keys."
            )
        key_usage = "ENCRYPT_DECRYPT"
    if key_usage not in ALLOWED_USAGES[key_spec]:
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    return key_spec, str(key_usage)


def create_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """CreateKey for every key spec AWS offers in its commercial Regions that the default
    backend declares; the others are refused with AWS-shaped errors."""
    key_spec, key_usage = _key_spec_and_usage(request)
    requested_origin = request.get("Origin", "AWS_KMS")
    # --- custom key stores (docs/custom-key-stores.md): CustomKeyStoreId/Origin=AWS_CLOUDHSM
    in_key_store = key_store_for_new_key(services, scope, request, key_spec)
    # --- end of custom key stores
    if in_key_store is not None:
        backend_name, origin = in_key_store
        allowed: tuple[str, ...] = ("AWS_KMS", origin)
    else:
        backend_name, origin = services.default_backend, requested_origin
        allowed = ("AWS_KMS", "EXTERNAL")
    if requested_origin not in allowed:
        raise UnsupportedOperationException(
            f"Origin {requested_origin} is not supported by mock-kms; only AWS_KMS and EXTERNAL"
            " keys (and AWS_CLOUDHSM keys in custom key stores) are available."
        )
    policy = request.get("Policy")
    if policy is not None:
        # The key's ARN is not known yet; a key policy's Resource is always "*".
        check_lockout(
            services,
            scope,
            check_policy(policy),
            scope.key_arn("*"),
            None,
            bool(request.get("BypassPolicyLockoutSafetyCheck")),
        )
    tags = check_new_tags(request.get("Tags") or [], existing=())
    require_backend_spec(services.backend(backend_name), key_spec)
    key = create_key_record(
        services,
        scope,
        description=request.get("Description", ""),
        policy=policy,
        tags=tags,
        multi_region=bool(request.get("MultiRegion", False)),
        key_spec=key_spec,
        key_usage=key_usage,
        backend_name=backend_name,
        origin=origin,
    )
    return {"KeyMetadata": key_metadata(key, services.store, cluster_of(services, key))}


def describe_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """DescribeKey: works in every key state; accepts aliases."""
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    return {"KeyMetadata": key_metadata(key, services.store, cluster_of(services, key))}


def list_keys(services: Services, scope: RequestScope, request: Request) -> Response:
    """ListKeys, every state, sorted by key id; purges keys whose deletion has come due."""
    purge_due_deletions(services, scope)
    limit = page_limit(request, default=100, maximum=1000)
    after = decode_marker(request.get("Marker"))
    rows = services.store.list_keys(scope.account_id, scope.region, after, limit + 1)
    shown = rows[:limit]
    items = [{"KeyId": key_id, "KeyArn": scope.key_arn(key_id)} for key_id, _ in shown]
    return paginate(rows, limit, shown[-1][0] if shown else None, "Keys", items)


def purge_due_deletions(services: Services, scope: RequestScope) -> None:
    """Complete every scheduled deletion in this account and region that has come due."""
    for key_id in services.store.keys_due_for_deletion(
        scope.account_id, scope.region, services.clock.now()
    ):
        key = services.store.get_key(scope.account_id, scope.region, key_id)
        if key is not None:
            apply_due_lifecycle(services, key)


def update_key_description(services: Services, scope: RequestScope, request: Request) -> None:
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        if key.state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
            require_state(key, allow=(KeyState.ENABLED, KeyState.DISABLED))
        services.store.update_key(key, description=request["Description"])


def enable_key(services: Services, scope: RequestScope, request: Request) -> None:
    _set_enabled(services, scope, request, enabled=True)


def disable_key(services: Services, scope: RequestScope, request: Request) -> None:
    _set_enabled(services, scope, request, enabled=False)


def _set_enabled(
    services: Services, scope: RequestScope, request: Request, *, enabled: bool
) -> None:
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        require_state(key, allow=(KeyState.ENABLED, KeyState.DISABLED))
        services.store.update_key(key, state=KeyState.ENABLED if enabled else KeyState.DISABLED)


def pending_window(request: Request) -> int:
    """The request's PendingWindowInDays (default 30); raises AWS's ValidationException
    outside 7..30."""
    window = int(request.get("PendingWindowInDays", 30))
    if not 7 <= window <= 30:
        raise ValidationException(
            f"1 validation error detected: Value '{window}' at 'pendingWindowInDays' failed to "
            "satisfy constraint: Member must have value greater than or equal to 7 and less "
            "than or equal to 30"
        )
    return window


def schedule_key_deletion(services: Services, scope: RequestScope, request: Request) -> Response:
    window = pending_window(request)
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        if key.state == KeyState.PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is pending deletion.")
        deletion_date = services.clock.now() + window * SECONDS_PER_DAY
        services.store.update_key(key, state=KeyState.PENDING_DELETION, deletion_date=deletion_date)
    return {
        "KeyId": key.arn,
        "DeletionDate": deletion_date,
        "KeyState": KeyState.PENDING_DELETION,
        "PendingWindowInDays": window,
    }


def cancel_key_deletion(services: Services, scope: RequestScope, request: Request) -> Response:
    """CancelKeyDeletion: the key comes back Disabled, as on AWS (PendingImport when it is an
    EXTERNAL key without all its material, docs/key-import.md)."""
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        if key.state != KeyState.PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        state = KeyState.DISABLED
        if key.origin == "EXTERNAL" and not material_complete(services, key):
            state = KeyState.PENDING_IMPORT
        services.store.update_key(key, state=state, deletion_date=None)
    return {"KeyId": key.arn}
