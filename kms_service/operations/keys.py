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


def create_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """CreateKey for symmetric encryption keys (SYMMETRIC_DEFAULT, ENCRYPT_DECRYPT)."""
    key_spec = (
        request.get("KeySpec") or request.get("CustomerMasterKeySpec") or ("SYMMETRIC_DEFAULT")
    )
    if request.get("KeySpec") and request.get("CustomerMasterKeySpec"):
        raise ValidationException(
            "You cannot specify KeySpec and CustomerMasterKeySpec in the same request. "
            "CustomerMasterKeySpec parameter is deprecated. Use KeySpec parameter instead."
        )
    key_usage = request.get("KeyUsage")
    if key_spec != "SYMMETRIC_DEFAULT":
        if key_usage is None:
            raise ValidationException(
                "You must specify a KeyUsage value for all KMS keys except for symmetric "
                "encryption keys."
            )
        raise UnsupportedOperationException(
            f"KeySpec {key_spec} is not supported by mock-kms yet; "
            "only SYMMETRIC_DEFAULT keys are available."
        )
    if key_usage not in (None, "ENCRYPT_DECRYPT"):
        raise ValidationException(f"KeyUsage {key_usage} is not compatible with KeySpec {key_spec}")
    origin = request.get("Origin", "AWS_KMS")
    if origin != "AWS_KMS":
        raise UnsupportedOperationException(
            f"Origin {origin} is not supported by mock-kms; only AWS_KMS keys are available."
        )
    if request.get("CustomKeyStoreId") or request.get("XksKeyId"):
        raise UnsupportedOperationException("Custom key stores are not supported by mock-kms.")
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
    key = create_key_record(
        services,
        scope,
        description=request.get("Description", ""),
        policy=policy,
        tags=tags,
        multi_region=bool(request.get("MultiRegion", False)),
    )
    return {"KeyMetadata": key_metadata(key)}


def describe_key(services: Services, scope: RequestScope, request: Request) -> Response:
    """DescribeKey: works in every key state; accepts aliases."""
    key = resolve_key(services, scope, request["KeyId"], allow_alias=True)
    return {"KeyMetadata": key_metadata(key)}


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
        if key.state == KeyState.PENDING_DELETION:
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


def schedule_key_deletion(services: Services, scope: RequestScope, request: Request) -> Response:
    window = request.get("PendingWindowInDays", 30)
    if not 7 <= window <= 30:
        raise ValidationException(
            f"1 validation error detected: Value '{window}' at 'pendingWindowInDays' failed to "
            "satisfy constraint: Member must have value greater than or equal to 7 and less "
            "than or equal to 30"
        )
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
    """CancelKeyDeletion: the key comes back Disabled, as on AWS."""
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        if key.state != KeyState.PENDING_DELETION:
            raise KMSInvalidStateException(f"{key.arn} is not pending deletion.")
        services.store.update_key(key, state=KeyState.DISABLED, deletion_date=None)
    return {"KeyId": key.arn}
