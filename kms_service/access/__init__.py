"""Access control: identities, the policy language, grants' rules and :func:`authorize`.

Pure functions and values: no HTTP, no store. The operations layer builds the identity,
the key resource and the request context, and calls :func:`authorize` before any
cryptography. See docs/access-control.md.
"""

from kms_service.access.evaluate import (
    Decision,
    DecisionCache,
    KeyResource,
    MappingContext,
    Reason,
    authorize,
)
from kms_service.access.policy import Policy, PolicySyntaxError, parse_policy
from kms_service.access.principals import Identity, make_identity

__all__ = [
    "Decision",
    "DecisionCache",
    "Identity",
    "KeyResource",
    "MappingContext",
    "Policy",
    "PolicySyntaxError",
    "Reason",
    "authorize",
    "make_identity",
    "parse_policy",
]
