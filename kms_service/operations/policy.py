"""Key policies: GetKeyPolicy, PutKeyPolicy, ListKeyPolicies, and the checks AWS applies to a
new key policy (CreateKey, PutKeyPolicy): size, JSON, the policy language, KMS's own rules
and the lockout safety check (docs/access-control.md, "Checks on a new key policy").
"""

from __future__ import annotations

from typing import Any

from kms_service.access import KeyResource, PolicySyntaxError, authorize, parse_policy
from kms_service.access.policy import Policy, check_key_policy
from kms_service.domain.errors import (
    LimitExceededException,
    MalformedPolicyDocumentException,
    NotFoundException,
)
from kms_service.operations.authorization import request_context
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.resolve import reload_key, require_customer_managed, resolve_key
from kms_service.store import KeyRecord

MAX_POLICY_BYTES = 32 * 1024
LOCKOUT_MESSAGE = "The new key policy will not allow you to update the key policy in the future."

Request = dict[str, Any]
Response = dict[str, Any]


def check_policy(policy: str) -> Policy:
    """The parsed policy; raises :class:`LimitExceededException` over 32 KB and
    :class:`MalformedPolicyDocumentException` (AWS's messages) for anything AWS refuses."""
    if len(policy.encode("utf-8")) > MAX_POLICY_BYTES:
        raise LimitExceededException(
            f"Policy document exceeds the maximum size of {MAX_POLICY_BYTES} bytes."
        )
    try:
        parsed = parse_policy(policy)
        check_key_policy(parsed)
    except PolicySyntaxError as error:
        raise MalformedPolicyDocumentException(error.message) from None
    return parsed


def check_lockout(
    services: Services,
    scope: RequestScope,
    policy: Policy,
    key_arn: str,
    key: KeyRecord | None,
    bypass: bool,
) -> None:
    """The lockout safety check: unless ``bypass``, the new policy must let the caller call
    PutKeyPolicy on the key afterwards (grants aside, as AWS checks the policy alone).

    Raises :class:`MalformedPolicyDocumentException` with AWS's message.
    """
    access = scope.access
    if bypass or access is None:
        return
    action = "kms:PutKeyPolicy"
    context = request_context(services, scope, access, action, key, None)
    decision = authorize(
        access.identity, action, KeyResource(key_arn, scope.account_id, policy), context
    )
    if not decision.allowed:
        raise MalformedPolicyDocumentException(LOCKOUT_MESSAGE)


def _check_policy_name(request: Request) -> str:
    name = request.get("PolicyName", "default")
    if name != "default":
        raise NotFoundException(f"No such policy exists: {name}")
    return "default"


def get_key_policy(services: Services, scope: RequestScope, request: Request) -> Response:
    name = _check_policy_name(request)
    key = resolve_key(services, scope, request["KeyId"])
    return {"Policy": key.policy, "PolicyName": name}


def put_key_policy(services: Services, scope: RequestScope, request: Request) -> None:
    _check_policy_name(request)
    key = resolve_key(services, scope, request["KeyId"])
    require_customer_managed(key)
    policy = check_policy(request["Policy"])
    check_lockout(
        services, scope, policy, key.arn, key, bool(request.get("BypassPolicyLockoutSafetyCheck"))
    )
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        services.store.update_key(key, policy=request["Policy"])


def list_key_policies(services: Services, scope: RequestScope, request: Request) -> Response:
    resolve_key(services, scope, request["KeyId"])
    return {"PolicyNames": ["default"], "Truncated": False}
