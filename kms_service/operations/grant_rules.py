"""How a grant allows a request (docs/access-control.md, "Grants"): the grantee, the
operations and the encryption-context constraints. Kept apart from the grant operations
(:mod:`kms_service.operations.grants`) so that authorisation can use it without importing
key resolution.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kms_service.access import Identity, MappingContext
from kms_service.access.actions import CONTEXT_OPERATIONS
from kms_service.access.evaluate import evaluate_identity_only
from kms_service.operations.context import Services
from kms_service.store import KeyRecord


def constraints_met(
    constraints: Mapping[str, Any] | None, context: Mapping[str, str] | None
) -> bool:
    """Whether an encryption context meets a grant's constraints (case-sensitive, as AWS
    compares them): ``EncryptionContextEquals`` exactly, ``EncryptionContextSubset`` as a
    subset of the request's pairs."""
    if not constraints:
        return True
    if "SourceArn" in constraints:
        # Only requests an AWS service makes on behalf of that resource carry aws:SourceArn;
        # mock-kms's S3 sends none, so such a grant allows nothing here.
        return False
    actual = dict(context or {})
    equals = constraints.get("EncryptionContextEquals")
    if equals is not None and dict(equals) != actual:
        return False
    subset = constraints.get("EncryptionContextSubset")
    return subset is None or all(actual.get(k) == v for k, v in subset.items())


def grant_allows(
    services: Services,
    key: KeyRecord,
    identity: Identity,
    action: str,
    context: Mapping[str, str] | None,
) -> bool:
    """Whether a grant on ``key`` allows ``identity`` to perform ``action``.

    The grantee is the identity itself (a role session by its role), or its account's root,
    in which case the identity's IAM policy must allow the action too. Constraints apply to
    the operations that take an encryption context.
    """
    operation = action.removeprefix("kms:")
    grantees = [*identity.match_arns, identity.root_arn]
    for grant in services.store.grants_for_grantee(
        key.account_id, key.region, key.key_id, grantees
    ):
        if operation not in grant.operations:
            continue
        if operation in _CONSTRAINED_OPERATIONS and not constraints_met(grant.constraints, context):
            continue
        if grant.grantee_principal == identity.root_arn and not identity.is_root:
            decision = evaluate_identity_only(identity, action, key.arn, MappingContext())
            if not decision.allowed:
                continue
        return True
    return False


#: Operations whose requests carry an encryption context; constraints do not limit the others
#: (DescribeKey, RetireGrant), as on AWS.
_CONSTRAINED_OPERATIONS = CONTEXT_OPERATIONS - {"DescribeKey", "RetireGrant"}
