"""AWS's evaluation logic for KMS, and one :func:`authorize` every operation goes through.

The rules (docs/access-control.md, "Evaluation"):

1. An explicit ``Deny`` that applies, in the key policy or in the caller's IAM policy, wins.
2. Same account: the request is allowed when the key policy allows it to the caller
   directly (its ARN, or ``"*"``), or allows it to the caller's account (id or root ARN),
   which delegates to IAM, and the caller's IAM policy allows it too.
3. Another account's key: the key policy must allow it (directly or to the caller's
   account) AND the caller's IAM policy must allow it.
4. Otherwise a grant on the key for the caller and the operation allows it.
5. Otherwise it is refused, with the reason AWS names: no resource-based policy, or no
   identity-based policy, allows the action.

Operations not on a key are decided by the IAM policy alone. An identity without an IAM
policy (and an account's root user) is one IAM allows everything.

Decisions before grants depend only on the policies, the identity, the action, the resource
and the request-context keys the policies read, so they are cached by exactly those.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import NamedTuple

from kms_service.access.conditions import ContextValue, RequestContext
from kms_service.access.policy import Policy
from kms_service.access.principals import Identity, PrincipalMatch


class Reason(Enum):
    """Why a request was allowed or refused; the refusals map to AWS's message forms."""

    KEY_POLICY = "key policy"
    IAM_POLICY = "key policy delegating to IAM"
    GRANT = "grant"
    NO_RESOURCE_POLICY = "no resource-based policy allows"
    NO_IDENTITY_POLICY = "no identity-based policy allows"
    DENY_RESOURCE_POLICY = "explicit deny in a resource-based policy"
    DENY_IDENTITY_POLICY = "explicit deny in an identity-based policy"


_ALLOWING = frozenset({Reason.KEY_POLICY, Reason.IAM_POLICY, Reason.GRANT})
_DENYING = frozenset({Reason.DENY_RESOURCE_POLICY, Reason.DENY_IDENTITY_POLICY})


@dataclass(frozen=True)
class Decision:
    """The outcome of one authorisation, with its reason. ``allowed`` and ``explicit_deny``
    are worked out once, at construction: they are read on every request."""

    reason: Reason
    allowed: bool = field(init=False)
    explicit_deny: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "allowed", self.reason in _ALLOWING)
        object.__setattr__(self, "explicit_deny", self.reason in _DENYING)

    def message(self, principal_arn: str, action: str, resource: str) -> str:
        """AWS's AccessDeniedException message for a refusal."""
        head = (
            f"User: {principal_arn} is not authorized to perform: {action} on resource: {resource}"
        )
        if self.reason is Reason.DENY_RESOURCE_POLICY:
            return f"{head} with an explicit deny in a resource-based policy"
        if self.reason is Reason.DENY_IDENTITY_POLICY:
            return f"{head} with an explicit deny in an identity-based policy"
        if self.reason is Reason.NO_RESOURCE_POLICY:
            return f"{head} because no resource-based policy allows the {action} action"
        return f"{head} because no identity-based policy allows the {action} action"


class KeyResource(NamedTuple):
    """The KMS key a request is on: its ARN, its account and its parsed key policy."""

    arn: str
    account_id: str
    policy: Policy


class _Effect(Enum):
    NONE = 0
    ALLOW = 1
    DENY = 2


def _identity_policy_effect(
    identity: Identity, action: str, resource: str, context: RequestContext
) -> _Effect:
    """What the caller's IAM policy says (no policy: it allows everything)."""
    policy = identity.iam_policy
    if policy is None:
        return _Effect.ALLOW
    allowed = False
    for statement in policy.statements:
        if not statement.action_matches(action):
            continue
        if not statement.resource_matches(resource, context):
            continue
        if not statement.conditions_hold(context):
            continue
        if statement.effect == "Deny":
            return _Effect.DENY
        allowed = True
    return _Effect.ALLOW if allowed else _Effect.NONE


def evaluate_key_policies(
    identity: Identity, action: str, key: KeyResource, context: RequestContext
) -> Decision:
    """The decision of the key policy and IAM together, before grants (rules 1-3, 5)."""
    direct = through_account = False
    for statement in key.policy.statements:
        match = statement.principal_match(identity)
        if match is PrincipalMatch.NONE:
            continue
        if not statement.action_matches(action):
            continue
        if not statement.resource_matches(key.arn, context):
            continue
        if not statement.conditions_hold(context):
            continue
        if statement.effect == "Deny":
            return Decision(Reason.DENY_RESOURCE_POLICY)
        if match is PrincipalMatch.DIRECT:
            direct = True
        else:
            through_account = True
    iam = _identity_policy_effect(identity, action, key.arn, context)
    if iam is _Effect.DENY:
        return Decision(Reason.DENY_IDENTITY_POLICY)
    if identity.account_id == key.account_id:
        if direct:
            return Decision(Reason.KEY_POLICY)
        if through_account and iam is _Effect.ALLOW:
            return Decision(Reason.IAM_POLICY)
    elif (direct or through_account) and iam is _Effect.ALLOW:
        return Decision(Reason.KEY_POLICY if direct else Reason.IAM_POLICY)
    if direct or through_account:
        return Decision(Reason.NO_IDENTITY_POLICY)
    return Decision(Reason.NO_RESOURCE_POLICY)


def evaluate_identity_only(
    identity: Identity, action: str, resource: str, context: RequestContext
) -> Decision:
    """The decision for an operation not on a key: the IAM policy alone."""
    effect = _identity_policy_effect(identity, action, resource, context)
    if effect is _Effect.DENY:
        return Decision(Reason.DENY_IDENTITY_POLICY)
    if effect is _Effect.ALLOW:
        return Decision(Reason.IAM_POLICY)
    return Decision(Reason.NO_IDENTITY_POLICY)


_EMPTY: frozenset[str] = frozenset()
CacheKey = tuple[object, ...]


class DecisionCache:
    """Policy decisions (before grants), by everything they depend on.

    A key is (key policy object, IAM policy object, principal, account, action, resource,
    the values of the context keys those two policies read). Parsed policies are shared
    per distinct text (:func:`kms_service.access.policy.parse_policy`), so a key policy
    change is a new policy object and never hits an old entry. Bounded: cleared when full.
    """

    def __init__(self, limit: int = 20000) -> None:
        self._limit = limit
        self._decisions: dict[CacheKey, Decision] = {}
        self._keys: dict[tuple[object, object], tuple[str, ...]] = {}

    def __len__(self) -> int:
        return len(self._decisions)

    def _relevant_keys(
        self, key_policy: Policy | None, iam_policy: Policy | None
    ) -> tuple[str, ...]:
        pair = (key_policy, iam_policy)
        keys = self._keys.get(pair)
        if keys is None:
            union = (key_policy.context_keys if key_policy else _EMPTY) | (
                iam_policy.context_keys if iam_policy else _EMPTY
            )
            keys = tuple(sorted(union))
            if len(self._keys) >= self._limit:
                self._keys.clear()
            self._keys[pair] = keys
        return keys

    def decide(
        self,
        identity: Identity,
        action: str,
        key: KeyResource | None,
        resource: str,
        context: RequestContext,
    ) -> Decision:
        """The cached (or freshly evaluated) decision before grants."""
        key_policy = key.policy if key is not None else None
        relevant = self._relevant_keys(key_policy, identity.iam_policy)
        # Most policies (the default key policy among them) read no condition key.
        values: tuple[ContextValue | None, ...] = (
            tuple([context.get(k) for k in relevant]) if relevant else ()
        )
        cache_key: CacheKey = (
            key_policy,
            identity.iam_policy,
            identity.principal_arn,
            identity.account_id,
            action,
            resource,
            values,
        )
        decision = self._decisions.get(cache_key)
        if decision is None:
            if key is None:
                decision = evaluate_identity_only(identity, action, resource, context)
            else:
                decision = evaluate_key_policies(identity, action, key, context)
            if len(self._decisions) >= self._limit:
                self._decisions.clear()
            self._decisions[cache_key] = decision
        return decision


def authorize(
    identity: Identity,
    action: str,
    key: KeyResource | None,
    context: RequestContext,
    *,
    grant_allows: Callable[[], bool] | None = None,
    cache: DecisionCache | None = None,
    resource: str | None = None,
) -> Decision:
    """Decide whether ``identity`` may perform ``action`` on ``key`` (None: not on a key).

    ``grant_allows`` is consulted only when the policies neither allow nor explicitly deny
    (a grant never overrides a Deny). ``resource`` is the ARN named in messages and matched
    by IAM ``Resource`` (default: the key's ARN, or ``*`` without a key).
    """
    target = resource if resource is not None else (key.arn if key is not None else "*")
    if cache is not None:
        decision = cache.decide(identity, action, key, target, context)
    elif key is None:
        decision = evaluate_identity_only(identity, action, target, context)
    else:
        decision = evaluate_key_policies(identity, action, key, context)
    if decision.allowed or decision.explicit_deny or key is None:
        return decision
    if grant_allows is not None and grant_allows():
        return Decision(Reason.GRANT)
    return decision


class MappingContext:
    """A request context over a dict of (lowercased) keys, with an optional resolver that
    computes the keys not in the dict on first use (and remembers them)."""

    def __init__(
        self,
        values: dict[str, ContextValue] | None = None,
        resolver: Callable[[str], ContextValue | None] | None = None,
    ) -> None:
        self._values: dict[str, ContextValue | None] = dict(values or {})
        self._resolver = resolver

    def get(self, key: str) -> ContextValue | None:
        try:
            return self._values[key]
        except KeyError:
            pass
        value = self._resolver(key) if self._resolver is not None else None
        self._values[key] = value
        return value
