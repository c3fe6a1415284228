"""The AWS policy language as KMS uses it, parsed once and evaluated many times.

:func:`parse_policy` turns a JSON policy document (a key policy or an identity's IAM
policy) into a :class:`Policy`; :meth:`Statement.applies` tells whether one statement
speaks to one request. Combining statements, policies and grants into a decision is
:mod:`kms_service.access.evaluate`'s job. See docs/access-control.md.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import lru_cache

from kms_service.access.conditions import (
    ConditionSyntaxError,
    RequestContext,
    Test,
    parse_conditions,
    substitute,
    variable_keys,
)
from kms_service.access.principals import (
    Identity,
    PrincipalMatch,
    PrincipalSet,
    is_valid_service_principal,
    match_principal,
    parse_aws_principal,
)
from kms_service.access.wildcards import arn_match, compile_glob

VERSIONS = ("2012-10-17", "2008-10-17")
_ACTION = re.compile(r"^(\*|[a-zA-Z0-9-]+:[a-zA-Z0-9*?]+)$")

# AWS's MalformedPolicyDocumentException messages (docs/access-control.md, "Checks").
INVALID_PRINCIPALS = "Policy contains a statement with one or more invalid principals."
INVALID_JSON = "The policy document is not valid JSON."


class PolicySyntaxError(ValueError):
    """A policy document that AWS would refuse; ``message`` is the text to answer with."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Statement:
    """One parsed statement. Action patterns are lowercased (actions are case-insensitive)."""

    sid: str | None
    effect: str  # "Allow" or "Deny"
    principals: PrincipalSet | None
    not_principals: PrincipalSet | None
    actions: tuple[str, ...] | None
    not_actions: tuple[str, ...] | None
    resources: tuple[str, ...] | None
    not_resources: tuple[str, ...] | None
    conditions: tuple[Test, ...]

    def principal_match(self, identity: Identity) -> PrincipalMatch:
        """How this statement's ``Principal`` (or ``NotPrincipal``) names ``identity``.

        A statement with neither (an IAM policy's) is about its own identity: DIRECT.
        ``NotPrincipal`` names everyone except those listed (listing an account exempts
        only its root user, as on AWS); what it names it names DIRECT.
        """
        if self.principals is not None:
            return match_principal(self.principals, identity)
        if self.not_principals is not None:
            listed = self.not_principals
            if listed.everyone or any(a in listed.arns for a in identity.match_arns):
                return PrincipalMatch.NONE
            if identity.is_root and identity.account_id in listed.accounts:
                return PrincipalMatch.NONE
            return PrincipalMatch.DIRECT
        return PrincipalMatch.DIRECT

    def action_matches(self, action: str) -> bool:
        """Whether the statement covers ``action`` (``kms:Decrypt``), case-insensitively."""
        lowered = action.lower()
        if self.actions is not None:
            return any(_action_match(p, lowered) for p in self.actions)
        if self.not_actions is not None:
            return not any(_action_match(p, lowered) for p in self.not_actions)
        return False

    def resource_matches(self, resource: str, context: RequestContext) -> bool:
        """Whether the statement covers the resource ARN (or ``*``)."""
        if self.resources is not None:
            return any(_resource_match(p, resource, context) for p in self.resources)
        if self.not_resources is not None:
            return not any(_resource_match(p, resource, context) for p in self.not_resources)
        return False

    def conditions_hold(self, context: RequestContext) -> bool:
        return all(test.evaluate(context) for test in self.conditions)


def _action_match(pattern: str, lowered_action: str) -> bool:
    if pattern == "*" or pattern == lowered_action:
        return True
    if "*" not in pattern and "?" not in pattern:
        return False
    return compile_glob(pattern).fullmatch(lowered_action) is not None


def _resource_match(pattern: str, resource: str, context: RequestContext) -> bool:
    if pattern == "*":
        return True
    if "${" in pattern:
        substituted = substitute(pattern, context)
        if substituted is None:
            return False
        pattern = substituted
    if resource == "*":
        return False
    return arn_match(pattern, resource)


@dataclass(frozen=True, eq=False)
class Policy:
    """A parsed policy document.

    ``context_keys`` are the (lowercased) request-context keys its conditions and policy
    variables read: a decision depends on the request only through them, which is what
    makes decisions cacheable (:mod:`kms_service.access.evaluate`). Compared and hashed
    by identity: one object per distinct text (:func:`parse_policy`), so hashing is cheap.
    """

    statements: tuple[Statement, ...]
    version: str | None
    context_keys: frozenset[str] = field(default=frozenset())


def _strings(value: object, element: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(isinstance(v, str) and v for v in values):
        raise PolicySyntaxError(f"Policy contains a statement with an invalid {element} element.")
    return tuple(values)


def _principal_set(value: object) -> PrincipalSet:
    """Parse ``"*"`` or ``{"AWS": ..., "Service": ...}``; raises with AWS's message."""
    if value == "*":
        return PrincipalSet(everyone=True)
    if not isinstance(value, dict) or not value:
        raise PolicySyntaxError(INVALID_PRINCIPALS)
    everyone = False
    accounts: set[str] = set()
    arns: set[str] = set()
    services: set[str] = set()
    for kind, raw in value.items():
        values = raw if isinstance(raw, list) else [raw]
        if not values or not all(isinstance(v, str) for v in values):
            raise PolicySyntaxError(INVALID_PRINCIPALS)
        if kind == "AWS":
            for text in values:
                parsed = parse_aws_principal(text)
                if parsed is None:
                    raise PolicySyntaxError(INVALID_PRINCIPALS)
                sort, name = parsed
                if sort == "*":
                    everyone = True
                elif sort == "account":
                    accounts.add(name)
                else:
                    arns.add(name)
        elif kind == "Service":
            for text in values:
                if not is_valid_service_principal(text):
                    raise PolicySyntaxError(INVALID_PRINCIPALS)
                services.add(text)
        else:
            # Federated and CanonicalUser principals mean nothing to KMS.
            raise PolicySyntaxError(INVALID_PRINCIPALS)
    return PrincipalSet(everyone, frozenset(accounts), frozenset(arns), frozenset(services))


def _actions(value: object) -> tuple[str, ...]:
    actions = _strings(value, "Action")
    for action in actions:
        if not _ACTION.match(action):
            raise PolicySyntaxError(
                f"Policy contains a statement with one or more invalid actions: {action}"
            )
    return tuple(a.lower() for a in actions)


_KNOWN_ELEMENTS = frozenset(
    {
        "Sid",
        "Effect",
        "Principal",
        "NotPrincipal",
        "Action",
        "NotAction",
        "Resource",
        "NotResource",
        "Condition",
    }
)


def _statement(raw: object) -> Statement:
    if not isinstance(raw, dict):
        raise PolicySyntaxError("Policy statements must be JSON objects.")
    unknown = set(raw) - _KNOWN_ELEMENTS
    if unknown:
        raise PolicySyntaxError(
            f"Policy contains a statement with an unknown element: {sorted(unknown)[0]}"
        )
    effect = raw.get("Effect")
    if effect not in ("Allow", "Deny"):
        raise PolicySyntaxError("Policy contains a statement with an invalid Effect element.")
    sid = raw.get("Sid")
    if sid is not None and not isinstance(sid, str):
        raise PolicySyntaxError("Policy contains a statement with an invalid Sid element.")
    for one, other in (
        ("Principal", "NotPrincipal"),
        ("Action", "NotAction"),
        ("Resource", "NotResource"),
    ):
        if one in raw and other in raw:
            raise PolicySyntaxError(
                f"Policy contains a statement with both {one} and {other} elements."
            )
    try:
        conditions = parse_conditions(raw["Condition"]) if "Condition" in raw else ()
    except ConditionSyntaxError as exc:
        raise PolicySyntaxError(f"Policy contains an invalid Condition element: {exc}") from None
    return Statement(
        sid=sid,
        effect=effect,
        principals=_principal_set(raw["Principal"]) if "Principal" in raw else None,
        not_principals=_principal_set(raw["NotPrincipal"]) if "NotPrincipal" in raw else None,
        actions=_actions(raw["Action"]) if "Action" in raw else None,
        not_actions=_actions(raw["NotAction"]) if "NotAction" in raw else None,
        resources=_strings(raw["Resource"], "Resource") if "Resource" in raw else None,
        not_resources=_strings(raw["NotResource"], "NotResource") if "NotResource" in raw else None,
        conditions=conditions,
    )


def _context_keys(statements: Iterable[Statement]) -> frozenset[str]:
    keys: set[str] = set()
    for statement in statements:
        for test in statement.conditions:
            keys.add(test.key)
            keys |= variable_keys(test.values)
        keys |= variable_keys(statement.resources or ())
        keys |= variable_keys(statement.not_resources or ())
    return frozenset(keys)


def parse_document(document: object) -> Policy:
    """Parse an already-decoded JSON policy document. Raises :class:`PolicySyntaxError`."""
    if not isinstance(document, dict):
        raise PolicySyntaxError("The policy document must be a JSON object.")
    version = document.get("Version")
    if version is not None and version not in VERSIONS:
        raise PolicySyntaxError(f"The policy document has an invalid Version: {version}")
    raw_statements = document.get("Statement")
    if raw_statements is None:
        raise PolicySyntaxError("The policy document must contain a Statement element.")
    if isinstance(raw_statements, dict):
        raw_statements = [raw_statements]
    if not isinstance(raw_statements, list):
        raise PolicySyntaxError("The Statement element must be an object or a list.")
    statements = tuple(_statement(raw) for raw in raw_statements)
    return Policy(statements=statements, version=version, context_keys=_context_keys(statements))


@lru_cache(maxsize=1024)
def parse_policy(text: str) -> Policy:
    """Parse a policy document's JSON text, once per distinct text.

    Raises :class:`PolicySyntaxError` with the message to answer (JSON errors included).
    """
    try:
        document = json.loads(text)
    except ValueError:
        raise PolicySyntaxError(INVALID_JSON) from None
    return parse_document(document)


def check_key_policy(policy: Policy) -> None:
    """KMS's own rules for a key policy, beyond the language's: every statement names a
    principal, an action and the resource ``"*"``. Raises :class:`PolicySyntaxError`."""
    for statement in policy.statements:
        if statement.principals is None and statement.not_principals is None:
            raise PolicySyntaxError(INVALID_PRINCIPALS)
        if statement.actions is None and statement.not_actions is None:
            raise PolicySyntaxError(
                "Policy contains a statement without an Action or NotAction element."
            )
        if statement.resources is None or any(r != "*" for r in statement.resources):
            raise PolicySyntaxError(
                'Policy contains a statement whose Resource element is not "*".'
            )


def check_identity_policy(policy: Policy) -> None:
    """An IAM (identity-based) policy names no principal. Raises :class:`PolicySyntaxError`."""
    for statement in policy.statements:
        if statement.principals is not None or statement.not_principals is not None:
            raise PolicySyntaxError("Policy document should not specify a principal.")
        if statement.actions is None and statement.not_actions is None:
            raise PolicySyntaxError("Policy statement must contain actions.")
        if statement.resources is None and statement.not_resources is None:
            raise PolicySyntaxError("Policy statement must contain resources.")
