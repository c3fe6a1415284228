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
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from kms_service.access import (
    DecisionCache,
    Identity,
    KeyResource,
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
from kms_service.operations.grant_rules import grant_allows
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


class KeyRequestContext:
    """The request context of one authorisation: each condition key computed on first use
    only (most policies read none, the default policy included), then remembered."""

    __slots__ = ("_memo", "access", "action", "key", "requested", "scope", "services")

    def __init__(
        self,
        services: Services,
        scope: RequestScope,
        access: AccessScope,
        action: str,
        key: KeyRecord | None,
        requested: str | None,
    ) -> None:
        self.services = services
        self.scope = scope
        self.access = access
        self.action = action
        self.key = key
        self.requested = requested
        self._memo: dict[str, ContextValue | None] = {}

    def get(self, name: str) -> ContextValue | None:
        try:
            return self._memo[name]
        except KeyError:
            pass
        simple = _SIMPLE_KEYS.get(name)
        value = simple(self) if simple is not None else self._prefixed(name)
        self._memo[name] = value
        return value

    def encryption_context(self) -> Mapping[str, str] | None:
        return _encryption_context(self.access, self.action)

    def _prefixed(self, name: str) -> ContextValue | None:
        if name.startswith("kms:encryptioncontext:"):
            return _lookup(self.encryption_context(), name[len("kms:encryptioncontext:") :])
        if name.startswith("aws:requesttag/"):
            return _lookup(_request_tags(self.access.params), name[len("aws:requesttag/") :])
        if name.startswith("aws:resourcetag/") and self.key is not None:
            tags = dict(self.services.store.tags(self.key))
            return _lookup(tags, name[len("aws:resourcetag/") :])
        member = _REQUEST_MEMBERS.get(name)
        if member is not None:
            return _as_text(self.access.params.get(member))
        return None


def _lookup(pairs: Mapping[str, str] | None, lowered: str) -> str | None:
    """A value by case-insensitive key (condition key names are case-insensitive)."""
    for name, value in (pairs or {}).items():
        if name.lower() == lowered:
            return value
    return None


def _current_time(c: KeyRequestContext) -> str:
    moment = datetime.fromtimestamp(c.services.clock.now(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _encryption_algorithm(c: KeyRequestContext) -> ContextValue | None:
    member = {
        "kms:ReEncryptFrom": "SourceEncryptionAlgorithm",
        REENCRYPT_TO: "DestinationEncryptionAlgorithm",
    }.get(c.action, "EncryptionAlgorithm")
    algorithm = c.access.params.get(member)
    if algorithm is None and c.access.operation in _SYMMETRIC_ALGORITHM_OPERATIONS:
        return "SYMMETRIC_DEFAULT"
    return _as_text(algorithm)


def _context_keys(c: KeyRequestContext) -> ContextValue | None:
    context = c.encryption_context()
    return tuple(context) if context is not None else None


def _request_alias(c: KeyRequestContext) -> str | None:
    if c.requested is not None and "alias/" in c.requested:
        return "alias/" + c.requested.split("alias/", 1)[1]
    return None


def _tag_keys(c: KeyRequestContext) -> ContextValue | None:
    params = c.access.params
    if "TagKeys" in params:
        return _as_text(params["TagKeys"])
    return tuple(_request_tags(params)) if "Tags" in params else None


def _resource_aliases(c: KeyRequestContext) -> ContextValue | None:
    key = c.key
    if key is None:
        return None
    aliases = c.services.store.list_aliases(key.account_id, key.region, key.key_id, None, 1000)
    return tuple(alias.alias_name for alias in aliases)


def _constraint_type(c: KeyRequestContext) -> ContextValue | None:
    constraints = c.access.params.get("Constraints") or {}
    return _as_text(next(iter(constraints), None))


_SIMPLE_KEYS: dict[str, Callable[[KeyRequestContext], ContextValue | None]] = {
    "kms:calleraccount": lambda c: c.access.identity.account_id,
    "aws:principalaccount": lambda c: c.access.identity.account_id,
    "aws:principalarn": lambda c: c.access.identity.principal_arn,
    "aws:principaltype": lambda c: _PRINCIPAL_TYPES[c.access.identity.kind],
    "aws:username": lambda c: c.access.identity.username,
    "aws:sourceip": lambda c: c.access.source_ip,
    "aws:securetransport": lambda c: "true" if c.access.secure_transport else "false",
    "aws:currenttime": _current_time,
    "aws:epochtime": lambda c: str(int(c.services.clock.now())),
    "aws:requestedregion": lambda c: c.scope.region,
    "kms:viaservice": lambda c: c.access.via_service,
    "aws:viaawsservice": lambda c: "true" if c.access.via_service else "false",
    "kms:encryptioncontextkeys": _context_keys,
    "kms:encryptionalgorithm": _encryption_algorithm,
    "kms:grantoperations": lambda c: _as_text(c.access.params.get("Operations")),
    "kms:grantisforawsresource": lambda c: "false" if c.access.operation == "CreateGrant" else None,
    "kms:grantconstrainttype": _constraint_type,
    "kms:requestalias": _request_alias,
    "aws:tagkeys": _tag_keys,
    "kms:keyspec": lambda c: c.key.key_spec if c.key is not None else None,
    "kms:keyusage": lambda c: c.key.key_usage if c.key is not None else None,
    "kms:keyorigin": lambda c: c.key.origin if c.key is not None else None,
    "kms:keymanager": lambda c: c.key.key_manager if c.key is not None else None,
    "kms:resourcealiases": _resource_aliases,
}


def request_context(
    services: Services,
    scope: RequestScope,
    access: AccessScope,
    action: str,
    key: KeyRecord | None,
    requested: str | None,
) -> KeyRequestContext:
    """The request context of one authorisation (see :class:`KeyRequestContext`)."""
    return KeyRequestContext(services, scope, access, action, key, requested)


def _grant_allows(
    services: Services, key: KeyRecord, identity: Identity, action: str, access: AccessScope
) -> bool:
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
    arn = key.arn  # a property that formats the ARN on every read
    resource = KeyResource(arn, key.account_id, key_policy(key))
    context = KeyRequestContext(services, scope, access, action, key, requested)
    decision = authorize(
        identity,
        action,
        resource,
        context,
        grant_allows=lambda: _grant_allows(services, key, identity, action, access),
        cache=DECISIONS,
    )
    access.record(action, arn, decision, on_key=True)
    if not decision.allowed:
        raise _deny(access, action, arn, decision.message(identity.principal_arn, action, arn))


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
    access.record(action, resource, decision, on_key=False)
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
    if access is None or access.key_authorized or access.operation not in KEY_OPERATIONS:
        return
    log.error("operation %s completed without authorising its key", access.operation)
    raise KMSInternalException("The request could not be authorised.")
