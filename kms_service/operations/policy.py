"""Key policies: stored and returned as AWS does; checked for shape, not evaluated."""

from __future__ import annotations

import json
from typing import Any

from kms_service.domain.errors import (
    LimitExceededException,
    MalformedPolicyDocumentException,
    NotFoundException,
)
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.resolve import reload_key, require_customer_managed, resolve_key

MAX_POLICY_BYTES = 32 * 1024

Request = dict[str, Any]
Response = dict[str, Any]


def check_policy(policy: str) -> None:
    """Raise AWS's errors for a policy that is too large or not a JSON policy document."""
    if len(policy.encode("utf-8")) > MAX_POLICY_BYTES:
        raise LimitExceededException(
            f"Policy document exceeds the maximum size of {MAX_POLICY_BYTES} bytes."
        )
    try:
        document = json.loads(policy)
    except ValueError:
        raise MalformedPolicyDocumentException("The policy document is not valid JSON.") from None
    if not isinstance(document, dict) or "Statement" not in document:
        raise MalformedPolicyDocumentException(
            "The policy document must be a JSON object with a Statement."
        )


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
    check_policy(request["Policy"])
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        services.store.update_key(key, policy=request["Policy"])


def list_key_policies(services: Services, scope: RequestScope, request: Request) -> Response:
    resolve_key(services, scope, request["KeyId"])
    return {"PolicyNames": ["default"], "Truncated": False}
