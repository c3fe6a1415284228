"""Who is asking: identities, and the ``Principal`` element that names them in a policy.

An identity is an IAM user, an IAM role (or a session of one), or an account's root user.
The ``Principal`` element of a key policy names identities directly (a user or role ARN),
names a whole account (its 12-digit id or its root ARN, which delegates the decision to that
account's IAM policies), names everyone (``"*"``), or names AWS services.
See docs/access-control.md ("Principals").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kms_service.access.policy import Policy

ACCOUNT_ID = re.compile(r"^\d{12}$")
_IAM_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):iam::(?P<account>\d{12}):"
    r"(?P<resource>root|user/[\w+=,.@/-]+|role/[\w+=,.@/-]+)$"
)
_STS_ARN = re.compile(
    r"^arn:(?P<partition>aws|aws-cn|aws-us-gov):sts::(?P<account>\d{12}):"
    r"(?P<resource>assumed-role/[\w+=,.@-]+/[\w+=,.@-]+|federated-user/[\w+=,.@-]+)$"
)
_SERVICE = re.compile(r"^[a-z0-9][a-z0-9.-]*\.amazonaws\.com(\.cn)?$")


class PrincipalKind(Enum):
    ROOT = "Root"
    USER = "IAMUser"
    ROLE = "AssumedRole"
    FEDERATED = "FederatedUser"


@dataclass(frozen=True)
class Identity:
    """The caller of one request, as authorisation sees it.

    ``iam_policy`` is the identity's IAM (identity-based) policy, or None: an identity with
    none is treated as if IAM allowed it everything, so that a key policy alone decides for
    it (docs/access-control.md, "Identities"). An account's root user always has None.
    """

    principal_arn: str
    account_id: str
    iam_policy: Policy | None = field(default=None, compare=False)
    #: What key policies match against: a role session matches its role's ARN.
    match_arns: tuple[str, ...] = ()

    @property
    def kind(self) -> PrincipalKind:
        return principal_kind(self.principal_arn)

    @property
    def is_root(self) -> bool:
        return self.kind is PrincipalKind.ROOT

    @property
    def username(self) -> str | None:
        """``aws:username``: present for IAM users only, as on AWS."""
        if self.kind is PrincipalKind.USER:
            return self.principal_arn.rsplit("/", 1)[-1]
        return None

    @property
    def root_arn(self) -> str:
        return f"arn:aws:iam::{self.account_id}:root"


def principal_kind(arn: str) -> PrincipalKind:
    """The kind of principal an ARN names (users by default)."""
    resource = arn.split(":", 5)[-1]
    if resource == "root":
        return PrincipalKind.ROOT
    if resource.startswith(("role/", "assumed-role/")):
        return PrincipalKind.ROLE
    if resource.startswith("federated-user/"):
        return PrincipalKind.FEDERATED
    return PrincipalKind.USER


def make_identity(principal_arn: str, iam_policy: Policy | None = None) -> Identity:
    """An identity for ``principal_arn`` (an IAM user, role, root or STS session ARN).

    Raises ``ValueError`` for anything else. A role session (``assumed-role/R/s``) also
    matches policies that name the role ``arn:aws:iam::<acct>:role/R``, as on AWS.
    """
    match = _IAM_ARN.match(principal_arn) or _STS_ARN.match(principal_arn)
    if match is None:
        raise ValueError(
            f"{principal_arn!r} is not an IAM user, role or root ARN "
            "(arn:aws:iam::<12-digit account>:user/<name>, role/<name> or root)"
        )
    account = match["account"]
    arns = [principal_arn]
    resource = match["resource"]
    if resource.startswith("assumed-role/"):
        role = resource.split("/")[1]
        arns.append(f"arn:{match['partition']}:iam::{account}:role/{role}")
    is_root = resource == "root"
    return Identity(
        principal_arn=principal_arn,
        account_id=account,
        iam_policy=None if is_root else iam_policy,
        match_arns=tuple(arns),
    )


def is_valid_aws_principal(value: str) -> bool:
    """Whether ``value`` may appear under ``Principal: {"AWS": ...}`` in a key policy."""
    return (
        value == "*"
        or ACCOUNT_ID.match(value) is not None
        or _IAM_ARN.match(value) is not None
        or _STS_ARN.match(value) is not None
    )


def is_valid_service_principal(value: str) -> bool:
    """Whether ``value`` may appear under ``Principal: {"Service": ...}``."""
    return value == "*" or _SERVICE.match(value) is not None


@dataclass(frozen=True)
class PrincipalSet:
    """A parsed ``Principal``/``NotPrincipal`` element.

    ``everyone`` is ``"*"`` (or ``{"AWS": "*"}``); ``accounts`` holds the accounts named by
    id or root ARN (each delegates to that account's IAM); ``arns`` the users, roles and
    sessions named directly; ``services`` the AWS service principals.
    """

    everyone: bool = False
    accounts: frozenset[str] = frozenset()
    arns: frozenset[str] = frozenset()
    services: frozenset[str] = frozenset()


class PrincipalMatch(Enum):
    """How a statement's principal element matched an identity."""

    NONE = 0
    #: By the identity's own ARN, by ``"*"``, or the account root naming itself: the
    #: statement speaks for the identity without IAM.
    DIRECT = 1
    #: By the identity's account (id or root ARN): the account's IAM policies decide.
    ACCOUNT = 2


def match_principal(principals: PrincipalSet, identity: Identity) -> PrincipalMatch:
    """How ``principals`` names ``identity``: directly, through its account, or not."""
    if principals.everyone:
        return PrincipalMatch.DIRECT
    for arn in identity.match_arns or (identity.principal_arn,):
        if arn in principals.arns:
            return PrincipalMatch.DIRECT
    if identity.account_id in principals.accounts:
        # The root user named through its own account has no IAM policy to consult.
        return PrincipalMatch.DIRECT if identity.is_root else PrincipalMatch.ACCOUNT
    return PrincipalMatch.NONE


def parse_aws_principal(value: str) -> tuple[str, str] | None:
    """Classify one ``AWS`` principal value: ``("*", "*")``, ``("account", id)`` or
    ``("arn", arn)``; None if malformed."""
    if value == "*":
        return ("*", "*")
    if ACCOUNT_ID.match(value):
        return ("account", value)
    match = _IAM_ARN.match(value)
    if match is not None:
        if match["resource"] == "root":
            return ("account", match["account"])
        return ("arn", value)
    if _STS_ARN.match(value):
        return ("arn", value)
    return None
