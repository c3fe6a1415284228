"""Authorising a request: where the operations layer meets :mod:`kms_service.access`.

Two entry points, each called from exactly one place:

* :func:`authorize_key`, from :func:`kms_service.operations.resolve.resolve_key`, the one
  function that finds the key of any request: so every operation on a key is authorised
  (with its own action) as soon as its key is known, before any state check or cryptography.
* :func:`authorize_request`, from the wire dispatch before the operation runs: operations
  not on a key (IAM alone), and the alias resource of the alias operations.

After a successful operation on a key, :func:`require_authorized` checks that a decision
was taken, so that an operation that found its key some other way fails closed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kms_service.access import (
    DecisionCache,
    Identity,
    KeyResource,
    MappingContext,
    PolicySyntaxError,
    authorize,
    parse_policy,
)
from kms_service.access.actions import IAM_ONLY_OPERATIONS, KEY_OPERATIONS, REENCRYPT_TO
from kms_service.access.conditions import ContextValue
from kms_service.access.policy import Policy
from kms_service.access.principals import PrincipalKind
from kms_service.access.request import AccessScope
from kms_service.domain.errors import (
    AccessDeniedException,
    InvalidGrantTokenException,
    KMSInternalException,
)
from kms_service.operations.context import RequestScope, Services
from kms_service.store import KeyRecord

log = logging.getLogger("mock_kms.access")

#: Per worker process: decisions depend only on what their cache key holds.
DECISIONS = DecisionCache()
_EMPTY_POLICY = Policy(statements=(), version=None)
_ALIAS_OPERATIONS = frozenset({"CreateAlias", "UpdateAlias", "DeleteAlias"})
_PRINCIPAL_TYPES = {
    PrincipalKind.ROOT: "Account",
    PrincipalKind.USER: "User",
    PrincipalKind.ROLE: "AssumedRole",
    PrincipalKind.FEDERATED: "FederatedUser",
}
#: Request members that hold each condition key's value, by lowercased key.
_REQUEST_MEMBERS = {
    "kms:signingalgorithm": "SigningAlgorithm",
    "kms:messagetype": "MessageType",
    "kms:macalgorithm": "MacAlgorithm",
    "kms:keyagreementalgorithm": "KeyAgreementAlgorithm",
    "kms:datakeypairspec": "KeyPairSpec",
    "kms:wrappingalgorithm": "WrappingAlgorithm",
    "kms:wrappingkeyspec": "WrappingKeySpec",
    "kms:expirationmodel": "ExpirationModel",
    "kms:granteeprincipal": "GranteePrincipal",
    "kms:retiringprincipal": "RetiringPrincipal",
    "kms:bypasspolicylockoutsafetycheck": "BypassPolicyLockoutSafetyCheck",
    "kms:schedulekeydeletionpendingwindowindays": "PendingWindowInDays",
    "kms:rotationperiodindays": "RotationPeriodInDays",
    "kms:multiregion": "MultiRegion",
}
_SYMMETRIC_ALGORITHM_OPERATIONS = frozenset(
    {"Encrypt", "Decrypt", "ReEncrypt", "GenerateDataKey", "GenerateDataKeyWithoutPlaintext"}
)


def key_policy(key: KeyRecord) -> Policy:
    """The key's parsed policy. A stored policy that no longer parses (written before
    policies were checked) allows nothing, as AWS would treat an ineffective statement."""
    try:
        return parse_policy(key.policy)
    except PolicySyntaxError:
        return _EMPTY_POLICY


def _as_text(value: Any) -> ContextValue | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return str(value)


def _encryption_context(access: AccessScope, action: str) -> Mapping[str, str] | None:
    params = access.params
    if access.operation == "ReEncrypt":
        member = (
            "DestinationEncryptionContext"
            if action == REENCRYPT_TO
            else ("SourceEncryptionContext")
        )
        return params.get(member)
    if access.operation == "CreateGrant":
        constraints = params.get("Constraints") or {}
        return constraints.get("EncryptionContextEquals") or constraints.get(
            "EncryptionContextSubset"
        )
    return params.get("EncryptionContext")


def _request_tags(params: Mapping[str, Any]) -> dict[str, str]:
    return {tag["TagKey"]: tag["TagValue"] for tag in params.get("Tags") or []}


def request_context(
    services: Services,
    scope: RequestScope,
    access: AccessScope,
    action: str,
    key: KeyRecord | None,
    requested: str | None,
) -> MappingContext:
    """The request context of one authorisation; each key computed on first use only."""
    identity = access.identity
    params = access.params

    def resolve(name: str) -> ContextValue | None:
        if name == "kms:calleraccount" or name == "aws:principalaccount":
            return identity.account_id
        if name == "aws:principalarn":
            return identity.principal_arn
        if name == "aws:principaltype":
            return _PRINCIPAL_TYPES[identity.kind]
        if name == "aws:username":
            return identity.username
        if name == "aws:sourceip":
            return access.source_ip
        if name == "aws:securetransport":
            return "true" if access.secure_transport else "false"
        if name == "aws:currenttime":
            moment = datetime.fromtimestamp(services.clock.now(), UTC)
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        if name == "aws:epochtime":
            return str(int(services.clock.now()))
        if name == "aws:requestedregion":
            return scope.region
        if name == "kms:viaservice":
            return access.via_service
        if name == "aws:viaawsservice":
            return "true" if access.via_service else "false"
        if name == "kms:encryptioncontextkeys":
            context = _encryption_context(access, action)
            return tuple(context) if context is not None else None
        if name.startswith("kms:encryptioncontext:"):
            wanted = name[len("kms:encryptioncontext:") :]
            for context_key, value in (_encryption_context(access, action) or {}).items():
                if context_key.lower() == wanted:
                    return value
            return None
        if name == "kms:encryptionalgorithm":
            member = {
                "kms:ReEncryptFrom": "SourceEncryptionAlgorithm",
                REENCRYPT_TO: "DestinationEncryptionAlgorithm",
            }.get(action, "EncryptionAlgorithm")
            algorithm = params.get(member)
            if algorithm is None and access.operation in _SYMMETRIC_ALGORITHM_OPERATIONS:
                return "SYMMETRIC_DEFAULT"
            return _as_text(algorithm)
        if name == "kms:grantoperations":
            return _as_text(params.get("Operations"))
        if name == "kms:grantisforawsresource":
            return "false" if access.operation == "CreateGrant" else None
        if name == "kms:grantconstrainttype":
            constraints = params.get("Constraints") or {}
            return _as_text(next(iter(constraints), None))
        if name == "kms:requestalias":
            if requested is not None and "alias/" in requested:
                return "alias/" + requested.split("alias/", 1)[1]
            return None
        if name in _REQUEST_MEMBERS:
            return _as_text(params.get(_REQUEST_MEMBERS[name]))
        if name == "aws:tagkeys":
            if "TagKeys" in params:
                return _as_text(params["TagKeys"])
            return tuple(_request_tags(params)) if "Tags" in params else None
        if name.startswith("aws:requesttag/"):
            wanted = name[len("aws:requesttag/") :]
            for tag_key, value in _request_tags(params).items():
                if tag_key.lower() == wanted:
                    return value
            return None
        if key is None:
            return None
        if name == "kms:keyspec":
            return key.key_spec
        if name == "kms:keyusage":
            return key.key_usage
        if name == "kms:keyorigin":
            return key.origin
        if name == "kms:keymanager":
            return key.key_manager
        if name == "kms:resourcealiases":
            aliases = services.store.list_aliases(
                key.account_id, key.region, key.key_id, None, 1000
            )
            return tuple(alias.alias_name for alias in aliases)
        if name.startswith("aws:resourcetag/"):
            wanted = name[len("aws:resourcetag/") :]
            for tag_key, value in services.store.tags(key):
                if tag_key.lower() == wanted:
                    return value
            return None
        return None

    return MappingContext(resolver=resolve)


def _grant_allows(
    services: Services, key: KeyRecord, identity: Identity, action: str, access: AccessScope
) -> bool:
    # Bound late: grants live in kms_service.operations.grants, which uses this module.
    from kms_service.operations.grants import grant_allows

    return grant_allows(services, key, identity, action, _encryption_context(access, action))


def check_grant_tokens(services: Services, tokens: Sequence[str]) -> None:
    """Raise :class:`InvalidGrantTokenException` unless every token names a live grant."""
    for token in tokens:
        if not isinstance(token, str) or services.store.grant_by_token(token) is None:
            raise InvalidGrantTokenException("The grant token is not valid.")


def _deny(access: AccessScope, action: str, resource: str, message: str) -> AccessDeniedException:
    log.info(
        "access denied: %s %s on %s (%s)",
        access.identity.principal_arn,
        action,
        resource,
        access.operation,
    )
    return AccessDeniedException(message)


def authorize_key(
    services: Services,
    scope: RequestScope,
    key: KeyRecord,
    *,
    action: str | None = None,
    requested: str | None = None,
) -> None:
    """Authorise the request on ``key`` (found from ``requested``, the identifier the caller
    sent) with ``action`` (default: the operation's own action).

    Raises :class:`AccessDeniedException` with AWS's message. Does nothing for trusted
    internal callers (no ``scope.access``) and for operations not on a key.
    """
    access = scope.access
    if access is None:
        return
    if action is None:
        action = access.default_action
        if action is None:
            return
    tokens = access.params.get("GrantTokens")
    if tokens and not access.grant_tokens_checked:
        check_grant_tokens(services, tokens)
        access.grant_tokens_checked = True
    identity = access.identity
    resource = KeyResource(key.arn, key.account_id, key_policy(key))
    context = request_context(services, scope, access, action, key, requested)
    decision = authorize(
        identity,
        action,
        resource,
        context,
        grant_allows=lambda: _grant_allows(services, key, identity, action, access),
        cache=DECISIONS,
    )
    access.record(action, key.arn, decision)
    if not decision.allowed:
        raise _deny(
            access, action, key.arn, decision.message(identity.principal_arn, action, key.arn)
        )


def authorize_request(services: Services, scope: RequestScope) -> None:
    """Authorise what the dispatch must before the operation runs: an operation not on a
    key, by IAM alone on resource ``*``; the alias of an alias operation, by IAM alone on
    the alias ARN. Raises :class:`AccessDeniedException`."""
    access = scope.access
    if access is None:
        return
    operation = access.operation
    if operation in IAM_ONLY_OPERATIONS:
        resource = "*"
    elif operation in _ALIAS_OPERATIONS and isinstance(access.params.get("AliasName"), str):
        resource = scope.alias_arn(access.params["AliasName"])
    else:
        return
    action = f"kms:{operation}"
    context = request_context(services, scope, access, action, None, None)
    decision = authorize(access.identity, action, None, context, cache=DECISIONS, resource=resource)
    access.record(action, resource, decision)
    if not decision.allowed:
        raise _deny(
            access,
            action,
            resource,
            decision.message(access.identity.principal_arn, action, resource),
        )


def require_authorized(scope: RequestScope) -> None:
    """Fail closed when an operation on a key succeeded without any key decision."""
    access = scope.access
    if access is None or access.operation not in KEY_OPERATIONS:
        return
    if not any(d.resource != "*" and ":alias/" not in d.resource for d in access.decisions):
        log.error("operation %s completed without authorising its key", access.operation)
        raise KMSInternalException("The request could not be authorised.")
