"""Grants: CreateGrant, ListGrants, ListRetirableGrants, RetireGrant, RevokeGrant, and the
rules by which a grant allows a request (docs/access-control.md, "Grants").

A grant lets its grantee principal perform its operations on one key, whatever the key
policy says (an explicit Deny still wins), as long as the request's encryption context meets
its constraints. Grants are strongly consistent here, so a grant token is never needed to
use a new grant; tokens passed in ``GrantTokens`` are still checked.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from kms_service.access import MappingContext
from kms_service.access.actions import CONTEXT_OPERATIONS
from kms_service.access.evaluate import Decision, Reason, evaluate_identity_only
from kms_service.access.principals import is_valid_aws_principal, is_valid_service_principal
from kms_service.domain.errors import (
    AccessDeniedException,
    DryRunOperationException,
    InvalidArnException,
    InvalidGrantIdException,
    InvalidGrantTokenException,
    LimitExceededException,
    NotFoundException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.pagination import decode_marker, page_limit, paginate
from kms_service.operations.resolve import parse_reference, reload_key, require_state, resolve_key
from kms_service.store import GrantRecord, KeyRecord

Request = dict[str, Any]
Response = dict[str, Any]

MAX_GRANTS_PER_KEY = 50000
MAX_GRANTS_PER_GRANTEE_PER_KEY = 500
_DRY_RUN_MESSAGE = "The request would have succeeded, but the DryRun option is set."
_GRANT_ID_LENGTH = 64


# --- CreateGrant ----------------------------------------------------------------------------
def _check_principal(value: str, member: str) -> None:
    if not (is_valid_aws_principal(value) and value != "*") and not (
        is_valid_service_principal(value) and value != "*"
    ):
        raise ValidationException(f"Invalid {member}: {value}")


def _one_principal(request: Request, role: str, *, required: bool) -> str | None:
    """``<role>Principal`` or ``<role>ServicePrincipal`` (not both), checked; raises
    :class:`ValidationException`."""
    principal = request.get(f"{role}Principal")
    service = request.get(f"{role}ServicePrincipal")
    if principal is not None and service is not None:
        raise ValidationException(
            f"Specify either {role}Principal or {role}ServicePrincipal, not both."
        )
    if principal is None and service is None:
        if required:
            raise ValidationException(f"Specify either {role}Principal or {role}ServicePrincipal.")
        return None
    if principal is not None:
        _check_principal(principal, f"{role}Principal")
        return str(principal)
    return str(service)


def _check_constraints(request: Request) -> dict[str, Any] | None:
    constraints = request.get("Constraints")
    if not constraints:
        return None
    present: dict[str, Any] = {k: v for k, v in constraints.items() if v is not None}
    if "EncryptionContextSubset" in present and "EncryptionContextEquals" in present:
        raise ValidationException(
            "Grant constraints can include EncryptionContextEquals or "
            "EncryptionContextSubset, not both."
        )
    unsupported = sorted(set(request["Operations"]) - CONTEXT_OPERATIONS)
    if present and unsupported:
        raise ValidationException(
            f"Grant constraints are not supported with the operation {unsupported[0]}: it "
            "does not take an encryption context."
        )
    return present or None


def _same_grant(grant: GrantRecord, request: Request, constraints: dict[str, Any] | None) -> bool:
    return (
        grant.grantee_principal == request["GranteePrincipal"]
        and grant.retiring_principal == request.get("RetiringPrincipal")
        and sorted(grant.operations) == sorted(set(request["Operations"]))
        and grant.constraints == constraints
    )


def _narrower(parent: Mapping[str, Any] | None, child: Mapping[str, Any] | None) -> bool:
    """Whether ``child`` constraints are at least as strict as ``parent``'s."""
    if not parent:
        return True
    if not child:
        return False
    child_pairs = dict(
        child.get("EncryptionContextEquals") or child.get("EncryptionContextSubset") or {}
    )
    equals = parent.get("EncryptionContextEquals")
    if equals is not None:
        return child.get("EncryptionContextEquals") == dict(equals)
    subset = parent.get("EncryptionContextSubset") or {}
    return all(child_pairs.get(k) == v for k, v in subset.items())


def _check_derived_grant(
    services: Services,
    scope: RequestScope,
    key: KeyRecord,
    request: Request,
    constraints: dict[str, Any] | None,
) -> None:
    """A caller allowed CreateGrant only by a grant may create grants with no more operations
    and constraints at least as strict as that grant's (grants page, "CreateGrant")."""
    access = scope.access
    if access is None or not access.decisions:
        return
    if access.decisions[-1].decision.reason is not Reason.GRANT:
        return
    identity = access.identity
    wanted = set(request["Operations"])
    for grant in services.store.grants_for_grantee(
        key.account_id, key.region, key.key_id, [*identity.match_arns, identity.root_arn]
    ):
        if "CreateGrant" not in grant.operations:
            continue
        if wanted <= set(grant.operations) and _narrower(grant.constraints, constraints):
            return
    raise AccessDeniedException(
        f"User: {identity.principal_arn} is not authorized to perform: kms:CreateGrant on "
        f"resource: {key.arn} because the grant that allows it does not allow these "
        "operations or constraints"
    )


def create_grant(services: Services, scope: RequestScope, request: Request) -> Response:
    operations = request["Operations"]
    if not operations:
        raise ValidationException(
            "1 validation error detected: Value '[]' at 'operations' failed to satisfy "
            "constraint: Member must have length greater than or equal to 1"
        )
    request = {
        **request,
        "GranteePrincipal": _one_principal(request, "Grantee", required=True),
        "RetiringPrincipal": _one_principal(request, "Retiring", required=False),
    }
    constraints = _check_constraints(request)
    key = resolve_key(services, scope, request["KeyId"], cross_account=True)
    _check_derived_grant(services, scope, key, request, constraints)
    require_state(key, allow=(KeyState.ENABLED,))
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    name = request.get("Name")
    with services.store.write():
        key = reload_key(services, key)
        if name is not None:
            for existing in services.store.list_grants(
                key.account_id, key.region, key.key_id, None, MAX_GRANTS_PER_KEY
            ):
                if existing.name == name and _same_grant(existing, request, constraints):
                    return {"GrantToken": existing.grant_token, "GrantId": existing.grant_id}
        if services.store.count_grants(key.account_id, key.region, key.key_id) >= (
            MAX_GRANTS_PER_KEY
        ):
            raise LimitExceededException(
                f"Cannot exceed quota for GrantsPerKey: {MAX_GRANTS_PER_KEY}"
            )
        same_grantee = services.store.grants_for_grantee(
            key.account_id, key.region, key.key_id, [request["GranteePrincipal"]]
        )
        if len(same_grantee) >= MAX_GRANTS_PER_GRANTEE_PER_KEY:
            raise LimitExceededException(
                "Cannot exceed quota for GrantsForGivenPrincipalPerKey: "
                f"{MAX_GRANTS_PER_GRANTEE_PER_KEY}"
            )
        grant = GrantRecord(
            grant_id=secrets.token_hex(_GRANT_ID_LENGTH // 2),
            account_id=key.account_id,
            region=key.region,
            key_id=key.key_id,
            grant_token=secrets.token_urlsafe(96),
            name=name,
            grantee_principal=request["GranteePrincipal"],
            retiring_principal=request.get("RetiringPrincipal"),
            issuing_account=f"arn:aws:iam::{scope.account_id}:root",
            operations=tuple(dict.fromkeys(operations)),
            constraints=constraints,
            creation_date=services.clock.now(),
        )
        services.store.insert_grant(grant)
    return {"GrantToken": grant.grant_token, "GrantId": grant.grant_id}


# --- listing --------------------------------------------------------------------------------
def _entry(grant: GrantRecord) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "KeyId": grant.key_arn,
        "GrantId": grant.grant_id,
        "CreationDate": grant.creation_date,
        "GranteePrincipal": grant.grantee_principal,
        "IssuingAccount": grant.issuing_account,
        "Operations": list(grant.operations),
    }
    if grant.name is not None:
        entry["Name"] = grant.name
    if grant.retiring_principal is not None:
        entry["RetiringPrincipal"] = grant.retiring_principal
    if grant.constraints:
        entry["Constraints"] = grant.constraints
    return entry


def _check_grant_id(grant_id: str | None) -> None:
    if grant_id is not None and not (
        len(grant_id) == _GRANT_ID_LENGTH and all(c in "0123456789abcdef" for c in grant_id)
    ):
        raise InvalidGrantIdException(f"Invalid grant ID: {grant_id}")


def list_grants(services: Services, scope: RequestScope, request: Request) -> Response:
    _check_grant_id(request.get("GrantId"))
    key = resolve_key(services, scope, request["KeyId"], cross_account=True)
    limit = page_limit(request, default=50, maximum=100)
    after = decode_marker(request.get("Marker"))
    rows = services.store.list_grants(
        key.account_id,
        key.region,
        key.key_id,
        after,
        limit + 1,
        grant_id=request.get("GrantId"),
        grantee_principal=request.get("GranteePrincipal") or request.get("GranteeServicePrincipal"),
    )
    shown = rows[:limit]
    items = [_entry(grant) for grant in shown]
    return paginate(rows, limit, shown[-1].grant_id if shown else None, "Grants", items)


def list_retirable_grants(services: Services, scope: RequestScope, request: Request) -> Response:
    limit = page_limit(request, default=50, maximum=100)
    after = decode_marker(request.get("Marker"))
    retiring = _one_principal(request, "Retiring", required=True)
    assert retiring is not None  # required
    rows = services.store.list_retirable_grants(retiring, scope.region, after, limit + 1)
    shown = rows[:limit]
    items = [_entry(grant) for grant in shown]
    return paginate(rows, limit, shown[-1].grant_id if shown else None, "Grants", items)


# --- retiring and revoking ------------------------------------------------------------------
def _may_retire(grant: GrantRecord, key: KeyRecord, scope: RequestScope) -> bool:
    """AWS's rule: the retiring principal, the grantee if the grant allows RetireGrant, or
    the account that issued the grant (through IAM ``kms:RetireGrant``) may retire it."""
    access = scope.access
    if access is None:
        return True
    identity = access.identity
    if grant.retiring_principal in identity.match_arns:
        return True
    if grant.grantee_principal in identity.match_arns and "RetireGrant" in grant.operations:
        return True
    if grant.issuing_account == identity.root_arn:
        return evaluate_identity_only(
            identity, "kms:RetireGrant", key.arn, MappingContext()
        ).allowed
    return False


def retire_grant(services: Services, scope: RequestScope, request: Request) -> None:
    token, key_id, grant_id = (
        request.get("GrantToken"),
        request.get("KeyId"),
        request.get("GrantId"),
    )
    if token is not None:
        grant = services.store.grant_by_token(token)
        if grant is None:
            raise InvalidGrantTokenException("The grant token is not valid.")
    elif key_id is not None and grant_id is not None:
        if not key_id.startswith("arn:"):
            raise InvalidArnException(f"KeyId must be a key ARN to retire a grant: {key_id}")
        _check_grant_id(grant_id)
        reference = parse_reference(scope, key_id, allow_alias=False)
        found = services.store.grant_by_id(grant_id)
        if found is None or (found.account_id, found.key_id) != (
            reference.account_id,
            reference.key_id,
        ):
            raise NotFoundException(f"Grant ID {grant_id} not found")
        grant = found
    else:
        raise ValidationException(
            "Either the grant token or both the key ARN and the grant ID must be given."
        )
    # Found without key-policy authorisation: retiring is decided by the grant itself.
    key = resolve_key(services, replace(scope, access=None), grant.key_arn, cross_account=True)
    allowed = _may_retire(grant, key, scope)
    if scope.access is not None:
        scope.access.record(
            "kms:RetireGrant",
            key.arn,
            Decision(Reason.GRANT if allowed else Reason.NO_IDENTITY_POLICY),
            on_key=True,
        )
    if not allowed:
        principal = scope.access.identity.principal_arn if scope.access else scope.principal_arn
        raise AccessDeniedException(
            f"User: {principal} is not authorized to perform: kms:RetireGrant on resource: "
            f"{key.arn} because no identity-based policy allows the kms:RetireGrant action"
        )
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    with services.store.write():
        services.store.delete_grant(grant)


def revoke_grant(services: Services, scope: RequestScope, request: Request) -> None:
    _check_grant_id(request["GrantId"])
    key = resolve_key(services, scope, request["KeyId"], cross_account=True)
    grant = services.store.grant_by_id(request["GrantId"])
    if grant is None or (grant.account_id, grant.region, grant.key_id) != (
        key.account_id,
        key.region,
        key.key_id,
    ):
        raise NotFoundException(f"Grant ID {request['GrantId']} not found")
    if request.get("DryRun"):
        raise DryRunOperationException(_DRY_RUN_MESSAGE)
    with services.store.write():
        services.store.delete_grant(grant)
