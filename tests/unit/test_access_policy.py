"""The policy language, the evaluation rules and AWS's refusal messages, case by case."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kms_service.access import (
    DecisionCache,
    KeyResource,
    MappingContext,
    PolicySyntaxError,
    Reason,
    authorize,
    make_identity,
    parse_policy,
)
from kms_service.access.policy import check_identity_policy, check_key_policy
from kms_service.operations.creation import default_policy

A, B = "111122223333", "444455556666"
KEY = f"arn:aws:kms:us-east-1:{A}:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALICE = f"arn:aws:iam::{A}:user/alice"
BOB = f"arn:aws:iam::{B}:user/bob"


def policy(*statements: dict[str, Any]) -> str:
    return json.dumps({"Version": "2012-10-17", "Statement": list(statements)})


def key(text: str) -> KeyResource:
    return KeyResource(KEY, A, parse_policy(text))


def decide(
    key_policy: str, caller: str, action: str, iam: str | None = None, **context: Any
) -> Reason:
    identity = make_identity(caller, parse_policy(iam) if iam else None)
    ctx = MappingContext({k.lower(): v for k, v in context.items()})
    return authorize(identity, action, key(key_policy), ctx).reason


def test_default_policy_parses_and_delegates_to_iam() -> None:
    text = default_policy(A)
    check_key_policy(parse_policy(text))
    assert decide(text, ALICE, "kms:Decrypt") is Reason.IAM_POLICY
    assert decide(text, f"arn:aws:iam::{A}:root", "kms:Decrypt") is Reason.KEY_POLICY
    only_encrypt = policy({"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"})
    assert decide(text, ALICE, "kms:Decrypt", only_encrypt) is Reason.NO_IDENTITY_POLICY
    assert decide(text, ALICE, "kms:encrypt", only_encrypt) is Reason.IAM_POLICY
    # Another account is not named by the default policy.
    assert decide(text, BOB, "kms:Encrypt") is Reason.NO_RESOURCE_POLICY


def test_refusal_messages_are_awss() -> None:
    text = policy(
        {"Effect": "Allow", "Principal": {"AWS": A}, "Action": "kms:*", "Resource": "*"},
        {"Effect": "Deny", "Principal": "*", "Action": "kms:ScheduleKeyDeletion", "Resource": "*"},
    )
    identity = make_identity(
        ALICE,
        parse_policy(
            policy(
                {"Effect": "Allow", "Action": "kms:Encrypt", "Resource": "*"},
                {"Effect": "Deny", "Action": "kms:DisableKey", "Resource": "*"},
            )
        ),
    )
    ctx = MappingContext()
    decision = authorize(identity, "kms:Decrypt", key(text), ctx)
    assert decision.message(ALICE, "kms:Decrypt", KEY) == (
        f"User: {ALICE} is not authorized to perform: kms:Decrypt on resource: {KEY} "
        "because no identity-based policy allows the kms:Decrypt action"
    )
    decision = authorize(identity, "kms:DisableKey", key(text), ctx)
    assert decision.message(ALICE, "kms:DisableKey", KEY).endswith(
        "with an explicit deny in an identity-based policy"
    )
    decision = authorize(identity, "kms:ScheduleKeyDeletion", key(text), ctx)
    assert decision.reason is Reason.DENY_RESOURCE_POLICY
    bob = authorize(make_identity(BOB), "kms:Decrypt", key(text), ctx)
    assert bob.message(BOB, "kms:Decrypt", KEY).endswith(
        "because no resource-based policy allows the kms:Decrypt action"
    )


def test_cross_account_needs_both_policies() -> None:
    text = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": [f"arn:aws:iam::{B}:root"]},
            "Action": ["kms:Encrypt", "kms:Decrypt"],
            "Resource": "*",
        },
    )
    allow_b = policy(
        {"Effect": "Allow", "Action": "kms:Decrypt", "Resource": f"arn:aws:kms:*:{A}:key/*"}
    )
    assert decide(text, BOB, "kms:Decrypt", allow_b) is Reason.IAM_POLICY
    assert decide(text, BOB, "kms:Encrypt", allow_b) is Reason.NO_IDENTITY_POLICY
    assert decide(text, BOB, "kms:Decrypt") is Reason.IAM_POLICY  # no IAM policy: allow-all
    wrong_resource = policy(
        {"Effect": "Allow", "Action": "kms:*", "Resource": f"arn:aws:kms:*:{B}:key/*"}
    )
    assert decide(text, BOB, "kms:Decrypt", wrong_resource) is Reason.NO_IDENTITY_POLICY


def test_role_sessions_match_their_role_and_conditions_apply() -> None:
    session = f"arn:aws:sts::{A}:assumed-role/app/run-7"
    text = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": f"arn:aws:iam::{A}:role/app"},
            "Action": "kms:Decrypt",
            "Resource": "*",
            "Condition": {
                "StringEquals": {"kms:EncryptionContext:purpose": "billing"},
                "Bool": {"aws:SecureTransport": "true"},
            },
        }
    )
    yes = {"kms:EncryptionContext:purpose": "billing", "aws:SecureTransport": "true"}
    assert decide(text, session, "kms:Decrypt", **yes) is Reason.KEY_POLICY
    no = {"kms:EncryptionContext:purpose": "billing", "aws:SecureTransport": "false"}
    assert decide(text, session, "kms:Decrypt", **no) is Reason.NO_RESOURCE_POLICY


@pytest.mark.parametrize(
    ("operator", "values", "context", "expected"),
    [
        (
            "StringLike",
            "arn:aws:iam::*:user/${aws:username}",
            {"aws:PrincipalArn": ALICE, "aws:username": "alice"},
            True,
        ),
        ("StringLike", "arn:aws:iam::*:user/${aws:username}", {"aws:PrincipalArn": ALICE}, False),
        ("NumericLessThanEquals", "10", {"aws:PrincipalArn": "9"}, True),
        ("NumericGreaterThan", "10", {"aws:PrincipalArn": "x"}, False),
        (
            "DateLessThan",
            "2030-01-01T00:00:00Z",
            {"aws:PrincipalArn": "2029-06-01T00:00:00Z"},
            True,
        ),
        ("IpAddress", ["10.0.0.0/8", "::1/128"], {"aws:PrincipalArn": "::1"}, True),
        ("NotIpAddress", "10.0.0.0/8", {}, True),
        ("StringNotEqualsIfExists", "x", {}, True),
        ("ArnLike", "arn:aws:iam::*:role/*", {"aws:PrincipalArn": ALICE}, False),
    ],
)
def test_condition_operators(
    operator: str, values: Any, context: dict[str, str], expected: bool
) -> None:
    text = policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {operator: {"aws:PrincipalArn": values}},
        }
    )
    reason = decide(text, ALICE, "kms:Encrypt", **context)
    assert (reason is Reason.KEY_POLICY) is expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "The policy document is not valid JSON."),
        (
            policy(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "alice"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ),
            "Policy contains a statement with one or more invalid principals.",
        ),
        (
            policy(
                {
                    "Effect": "Allow",
                    "Principal": {"AWS": "arn:aws:iam::1:user/x"},
                    "Action": "kms:*",
                    "Resource": "*",
                }
            ),
            "Policy contains a statement with one or more invalid principals.",
        ),
        (
            policy({"Effect": "Maybe", "Principal": "*", "Action": "kms:*", "Resource": "*"}),
            "Policy contains a statement with an invalid Effect element.",
        ),
        (
            policy({"Effect": "Allow", "Principal": "*", "Action": "kms Encrypt", "Resource": "*"}),
            "Policy contains a statement with one or more invalid actions: kms Encrypt",
        ),
        (
            policy(
                {
                    "Effect": "Allow",
                    "Principal": "*",
                    "Action": "kms:*",
                    "Resource": "*",
                    "Condition": {"StringSorta": {"a": "b"}},
                }
            ),
            "Policy contains an invalid Condition element: Unknown condition operator "
            "'StringSorta'",
        ),
    ],
)
def test_malformed_policies(text: str, message: str) -> None:
    with pytest.raises(PolicySyntaxError) as caught:
        parse_policy(text)
    assert caught.value.message == message


def test_key_and_identity_policy_rules() -> None:
    with pytest.raises(PolicySyntaxError, match="invalid principals"):
        check_key_policy(
            parse_policy(policy({"Effect": "Allow", "Action": "kms:*", "Resource": "*"}))
        )
    with pytest.raises(PolicySyntaxError, match="Resource"):
        check_key_policy(
            parse_policy(
                policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": KEY})
            )
        )
    with pytest.raises(PolicySyntaxError, match="should not specify a principal"):
        check_identity_policy(
            parse_policy(
                policy({"Effect": "Allow", "Principal": "*", "Action": "kms:*", "Resource": "*"})
            )
        )


def test_cache_follows_condition_keys_and_policy_text() -> None:
    cache = DecisionCache()
    text = policy(
        {
            "Effect": "Allow",
            "Principal": "*",
            "Action": "kms:*",
            "Resource": "*",
            "Condition": {"StringEquals": {"kms:EncryptionContext:a": "1"}},
        }
    )
    identity = make_identity(ALICE)
    yes = MappingContext({"kms:encryptioncontext:a": "1"})
    no = MappingContext({"kms:encryptioncontext:a": "2"})
    assert authorize(identity, "kms:Encrypt", key(text), yes, cache=cache).allowed
    assert not authorize(identity, "kms:Encrypt", key(text), no, cache=cache).allowed
    assert authorize(identity, "kms:Encrypt", key(text), yes, cache=cache).allowed
    assert len(cache) == 2
    # The default policy reads no context key: one entry serves every context.
    authorize(identity, "kms:Encrypt", key(default_policy(A)), yes, cache=cache)
    authorize(identity, "kms:Encrypt", key(default_policy(A)), no, cache=cache)
    assert len(cache) == 3


def test_identity_arns_are_checked() -> None:
    with pytest.raises(ValueError, match="not an IAM user, role or root ARN"):
        make_identity("arn:aws:iam::123:user/x")
    assert make_identity(f"arn:aws:iam::{A}:root").iam_policy is None
    assert make_identity(ALICE).username == "alice"
    assert make_identity(f"arn:aws:iam::{A}:role/r").username is None
