"""The evaluator against a small, independently written reference evaluator.

The reference below works on the raw JSON documents (no parsing step, no cache), with its
own wildcard matcher and its own reading of each condition operator, straight from AWS's
documented evaluation flow (docs/access-control.md cites the pages): collect every
statement that applies; any Deny wins; then the key policy must allow the caller, directly
or through its account (which then needs the IAM policy too), and another account's caller
always needs both. Hypothesis generates policies, identities and requests over a small
vocabulary chosen so that every branch (Deny, delegation, cross-account, IfExists, set
qualifiers, NotPrincipal, NotAction) is hit often.
"""

from __future__ import annotations

import ipaddress
import json
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kms_service.access import DecisionCache, KeyResource, MappingContext, authorize
from kms_service.access.policy import parse_policy
from kms_service.access.principals import make_identity

A, B = "111122223333", "444455556666"
KEY_ARN = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
IDENTITIES = [
    f"arn:aws:iam::{A}:root",
    f"arn:aws:iam::{A}:user/alice",
    f"arn:aws:iam::{A}:role/app",
    f"arn:aws:sts::{A}:assumed-role/app/session-1",
    f"arn:aws:iam::{B}:user/bob",
    f"arn:aws:iam::{B}:root",
]
PRINCIPALS = [
    "*",
    A,
    f"arn:aws:iam::{A}:root",
    B,
    f"arn:aws:iam::{B}:root",
    f"arn:aws:iam::{A}:user/alice",
    f"arn:aws:iam::{A}:role/app",
    f"arn:aws:iam::{B}:user/bob",
]
ACTIONS = ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey", "kms:PutKeyPolicy"]
ACTION_PATTERNS = [
    "*",
    "kms:*",
    "kms:Encrypt",
    "KMS:decrypt",
    "kms:Generate*",
    "kms:?ecrypt",
    "kms:Put*Policy",
    "s3:GetObject",
]
RESOURCES = ["*", KEY_ARN, f"arn:aws:kms:*:{A}:key/*", f"arn:aws:kms:us-east-1:{B}:key/*"]
CONDITIONS: list[dict[str, Any]] = [
    {"StringEquals": {"kms:EncryptionContext:purpose": "test"}},
    {"StringEquals": {"kms:EncryptionContext:purpose": ["test", "prod"]}},
    {"StringNotEquals": {"kms:EncryptionContext:purpose": "test"}},
    {"StringLike": {"kms:EncryptionContext:purpose": "t*"}},
    {"StringNotLike": {"kms:EncryptionContext:purpose": "p?od"}},
    {"StringEqualsIgnoreCase": {"kms:EncryptionContext:Purpose": "TEST"}},
    {"StringEqualsIfExists": {"kms:EncryptionContext:purpose": "test"}},
    {"Null": {"kms:EncryptionContext:purpose": "true"}},
    {"Null": {"kms:EncryptionContext:purpose": "false"}},
    {"ForAnyValue:StringEquals": {"kms:EncryptionContextKeys": ["purpose", "team"]}},
    {"ForAllValues:StringEquals": {"kms:EncryptionContextKeys": ["purpose"]}},
    {"ForAllValues:StringNotEquals": {"kms:EncryptionContextKeys": ["team"]}},
    {"Bool": {"aws:SecureTransport": "true"}},
    {"BoolIfExists": {"aws:SecureTransport": "false"}},
    {"StringEquals": {"kms:CallerAccount": A}},
    {"StringEquals": {"kms:ViaService": "s3.us-east-1.amazonaws.com"}},
    {"IpAddress": {"aws:SourceIp": "127.0.0.0/8"}},
    {"NotIpAddress": {"aws:SourceIp": ["10.0.0.0/8", "192.168.0.0/16"]}},
    {"NumericLessThan": {"kms:ScheduleKeyDeletionPendingWindowInDays": "10"}},
    {"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}},
    {"ArnLike": {"aws:PrincipalArn": f"arn:aws:iam::{A}:*"}},
    {"ArnNotEquals": {"aws:PrincipalArn": f"arn:aws:iam::{B}:user/bob"}},
    {"StringLike": {"aws:PrincipalArn": "arn:aws:iam::*:user/${aws:username}"}},
]


# --- the reference -------------------------------------------------------------------------
def ref_wildcard(pattern: str, text: str, fold: bool = False) -> bool:
    """Recursive ``*``/``?`` matcher, written separately from the module under test."""
    if fold:
        pattern, text = pattern.lower(), text.lower()
    if not pattern:
        return not text
    head = pattern[0]
    if head == "*":
        return any(ref_wildcard(pattern[1:], text[i:]) for i in range(len(text) + 1))
    if not text:
        return False
    if head == "?" or head == text[0]:
        return ref_wildcard(pattern[1:], text[1:])
    return False


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def ref_variables(text: str, ctx: dict[str, Any]) -> str | None:
    out, i = "", 0
    while i < len(text):
        if text.startswith("${", i):
            end = text.index("}", i)
            name = text[i + 2 : end].lower()
            value = ctx.get(name)
            if not isinstance(value, str):
                return None
            out += value
            i = end + 1
        else:
            out += text[i]
            i += 1
    return out


def ref_single(op: str, policy_value: str, value: str) -> bool:
    if op in ("StringEquals", "StringNotEquals"):
        return policy_value == value
    if op in ("StringEqualsIgnoreCase",):
        return policy_value.lower() == value.lower()
    if op in ("StringLike", "StringNotLike"):
        return ref_wildcard(policy_value, value)
    if op == "Bool":
        return policy_value.lower() == value.lower()
    if op in ("IpAddress", "NotIpAddress"):
        return ipaddress.ip_address(value) in ipaddress.ip_network(policy_value)
    if op == "NumericLessThan":
        return float(value) < float(policy_value)
    if op == "DateGreaterThan":
        from datetime import datetime

        return float(value) > datetime.fromisoformat(policy_value).timestamp()
    if op in ("ArnLike", "ArnNotEquals"):
        parts_p, parts_v = policy_value.split(":", 5), value.split(":", 5)
        return len(parts_p) == len(parts_v) == 6 and all(
            ref_wildcard(p, v) for p, v in zip(parts_p, parts_v, strict=True)
        )
    raise AssertionError(op)


def ref_condition(operator: str, key: str, policy_values: list[str], ctx: dict[str, Any]) -> bool:
    value = ctx.get(key.lower())
    present = value is not None and value != []
    if operator == "Null":
        return any((v == "true") == (not present) for v in policy_values)
    qualifier = None
    if ":" in operator:
        qualifier, operator = operator.split(":")
    if_exists = operator.endswith("IfExists")
    op = operator.removesuffix("IfExists")
    negated = op in ("StringNotEquals", "StringNotLike", "NotIpAddress", "ArnNotEquals")
    if not present:
        if if_exists:
            return True
        if qualifier == "ForAllValues":
            return True
        if qualifier == "ForAnyValue":
            return False
        return negated
    values = [ref_variables(v, ctx) for v in policy_values]
    candidates = [v for v in values if v is not None]
    items = as_list(value)
    if qualifier == "ForAllValues":
        if negated:
            return all(not any(ref_single(op, p, item) for p in candidates) for item in items)
        return all(any(ref_single(op, p, item) for p in candidates) for item in items)
    if negated:
        return not any(ref_single(op, p, item) for p in candidates for item in items)
    return any(ref_single(op, p, item) for p in candidates for item in items)


def ref_conditions(block: dict[str, Any], ctx: dict[str, Any]) -> bool:
    return all(
        ref_condition(operator, key, [str(v) for v in as_list(values)], ctx)
        for operator, entries in block.items()
        for key, values in entries.items()
    )


def ref_names(principal: Any, caller: str, account: str) -> str | None:
    """'direct', 'account' or None: how a Principal value names the caller."""
    if principal == "*":
        return "direct"
    names = as_list(principal["AWS"])
    callers = {caller}
    if ":assumed-role/" in caller:
        role = caller.split("/")[1]
        callers.add(f"arn:aws:iam::{account}:role/{role}")
    how = None
    for name in names:
        if name == "*" or name in callers:
            return "direct"
        if name in (account, f"arn:aws:iam::{account}:root"):
            how = "direct" if caller.endswith(":root") else "account"
    return how


def ref_decide(
    key_policy: dict[str, Any],
    iam_policy: dict[str, Any] | None,
    caller: str,
    action: str,
    ctx: dict[str, Any],
) -> str:
    account = caller.split(":")[4]
    has_iam = iam_policy is not None and not caller.endswith(":root")
    key_allows: set[str] = set()
    for statement in as_list(key_policy["Statement"]):
        if "Principal" in statement:
            how = ref_names(statement["Principal"], caller, account)
        else:
            excluded = ref_names(statement["NotPrincipal"], caller, account)
            # NotPrincipal naming an account exempts only that account's root user.
            how = None if excluded == "direct" else "direct"
        if how is None:
            continue
        if "Action" in statement:
            acts = any(ref_wildcard(p, action, fold=True) for p in as_list(statement["Action"]))
        else:
            acts = not any(
                ref_wildcard(p, action, fold=True) for p in as_list(statement["NotAction"])
            )
        if not acts or not ref_conditions(statement.get("Condition", {}), ctx):
            continue
        if statement["Effect"] == "Deny":
            return "DENY_RESOURCE_POLICY"
        key_allows.add(how)
    iam_allows = not has_iam
    if has_iam:
        assert iam_policy is not None
        for statement in as_list(iam_policy["Statement"]):
            if not any(ref_wildcard(p, action, fold=True) for p in as_list(statement["Action"])):
                continue
            if not any(
                r == "*" or ref_wildcard(r, KEY_ARN) for r in as_list(statement["Resource"])
            ):
                continue
            if not ref_conditions(statement.get("Condition", {}), ctx):
                continue
            if statement["Effect"] == "Deny":
                return "DENY_IDENTITY_POLICY"
            iam_allows = True
    same_account = account == A
    if same_account and "direct" in key_allows:
        return "ALLOW"
    if key_allows and iam_allows:
        return "ALLOW"
    return "NO_IDENTITY_POLICY" if key_allows else "NO_RESOURCE_POLICY"


# --- generators -----------------------------------------------------------------------------
def one_or_list(items: list[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(items), st.lists(st.sampled_from(items), min_size=1, max_size=3)
    )


def conditions() -> st.SearchStrategy[dict[str, Any]]:
    def merge(blocks: list[dict[str, Any]]) -> dict[str, Any]:
        merged: dict[str, Any] = {}
        for block in blocks:
            for operator, entries in block.items():
                merged.setdefault(operator, {}).update(entries)
        return merged

    return st.lists(st.sampled_from(CONDITIONS), max_size=2).map(merge)


key_statement = (
    st.fixed_dictionaries(
        {
            "Effect": st.sampled_from(["Allow", "Allow", "Deny"]),
            "Resource": st.just("*"),
        },
        optional={"Condition": conditions()},
    )
    .flatmap(
        lambda base: st.tuples(
            st.sampled_from(["Principal", "Principal", "NotPrincipal"]),
            st.one_of(st.just("*"), one_or_list(PRINCIPALS).map(lambda p: {"AWS": p})),
            st.sampled_from(["Action", "Action", "NotAction"]),
            one_or_list(ACTION_PATTERNS),
        ).map(lambda extra: {**base, extra[0]: extra[1], extra[2]: extra[3]})
    )
    .filter(lambda s: not ("NotPrincipal" in s and s["NotPrincipal"] == "*"))
)

iam_statement = st.fixed_dictionaries(
    {
        "Effect": st.sampled_from(["Allow", "Allow", "Deny"]),
        "Action": one_or_list(ACTION_PATTERNS),
        "Resource": one_or_list(RESOURCES),
    },
    optional={"Condition": conditions()},
)

contexts = st.fixed_dictionaries(
    {},
    optional={
        "purpose": st.sampled_from(["test", "prod", "TEST", "tango"]),
        "team": st.sampled_from(["a", "b"]),
        "secure": st.sampled_from(["true", "false"]),
        "via": st.just("s3.us-east-1.amazonaws.com"),
        "ip": st.sampled_from(["127.0.0.1", "10.1.2.3", "192.168.1.1", "8.8.8.8"]),
        "window": st.sampled_from(["7", "10", "30"]),
    },
)


def request_context(caller: str, raw: dict[str, str]) -> dict[str, Any]:
    account = caller.split(":")[4]
    ctx: dict[str, Any] = {
        "kms:calleraccount": account,
        "aws:principalarn": caller,
        "aws:currenttime": "1700000000",
    }
    if ":user/" in caller:
        ctx["aws:username"] = caller.rsplit("/", 1)[1]
    encryption_context = {k: raw[k] for k in ("purpose", "team") if k in raw}
    for name, value in encryption_context.items():
        ctx[f"kms:encryptioncontext:{name}"] = value
    ctx["kms:encryptioncontextkeys"] = sorted(encryption_context)
    if "secure" in raw:
        ctx["aws:securetransport"] = raw["secure"]
    if "via" in raw:
        ctx["kms:viaservice"] = raw["via"]
    if "ip" in raw:
        ctx["aws:sourceip"] = raw["ip"]
    if "window" in raw:
        ctx["kms:schedulekeydeletionpendingwindowindays"] = raw["window"]
    return ctx


def to_context(ctx: dict[str, Any]) -> MappingContext:
    return MappingContext({k: tuple(v) if isinstance(v, list) else v for k, v in ctx.items()})


CACHE = DecisionCache()


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key_statements=st.lists(key_statement, min_size=1, max_size=4),
    iam=st.one_of(st.none(), st.lists(iam_statement, min_size=1, max_size=3)),
    caller=st.sampled_from(IDENTITIES),
    action=st.sampled_from(ACTIONS),
    raw_context=contexts,
)
def test_evaluator_agrees_with_reference(
    key_statements: list[dict[str, Any]],
    iam: list[dict[str, Any]] | None,
    caller: str,
    action: str,
    raw_context: dict[str, str],
) -> None:
    key_policy = {"Version": "2012-10-17", "Statement": key_statements}
    iam_policy = None if iam is None else {"Version": "2012-10-17", "Statement": iam}
    ctx = request_context(caller, raw_context)
    expected = ref_decide(key_policy, iam_policy, caller, action, ctx)

    identity = make_identity(
        caller, parse_policy(json.dumps(iam_policy)) if iam_policy is not None else None
    )
    key = KeyResource(KEY_ARN, A, parse_policy(json.dumps(key_policy)))
    for cache in (None, CACHE, CACHE):  # uncached, first cached, second (hit) cached
        decision = authorize(identity, action, key, to_context(ctx), cache=cache)
        got = "ALLOW" if decision.allowed else decision.reason.name
        assert got == expected, (got, expected, key_policy, iam_policy, caller, action, ctx)


@settings(max_examples=300, deadline=None)
@given(
    key_statements=st.lists(key_statement, min_size=1, max_size=3),
    caller=st.sampled_from(IDENTITIES),
    action=st.sampled_from(ACTIONS),
    raw_context=contexts,
)
def test_a_grant_allows_only_what_policies_neither_allow_nor_deny(
    key_statements: list[dict[str, Any]], caller: str, action: str, raw_context: dict[str, str]
) -> None:
    key_policy = {"Version": "2012-10-17", "Statement": key_statements}
    ctx = request_context(caller, raw_context)
    expected = ref_decide(key_policy, None, caller, action, ctx)
    key = KeyResource(KEY_ARN, A, parse_policy(json.dumps(key_policy)))
    decision = authorize(
        make_identity(caller), action, key, to_context(ctx), grant_allows=lambda: True
    )
    if expected.startswith("DENY"):
        assert decision.reason.name == expected
    else:
        assert decision.allowed
