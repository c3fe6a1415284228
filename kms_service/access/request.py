"""What authorisation knows about one request beyond the key: who, what, from where.

Built once per request by the wire layer and carried in the operations' scope; the
operations layer reads the key-dependent condition keys itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from kms_service.access.actions import KEY_OPERATIONS, action_for
from kms_service.access.evaluate import Decision
from kms_service.access.principals import Identity


class Authorization(NamedTuple):
    """One decision taken for a request, for the audit log."""

    action: str
    resource: str
    decision: Decision


@dataclass
class AccessScope:
    """The caller's identity and the request facts conditions may read.

    ``params`` are the validated request members; ``via_service`` is set when an AWS
    service (mock-kms's S3) calls on the caller's behalf; ``decisions`` collects every
    authorisation taken for the request, in order.
    """

    identity: Identity
    operation: str
    params: Mapping[str, Any]
    source_ip: str | None = None
    secure_transport: bool = False
    via_service: str | None = None
    decisions: list[Authorization] = field(default_factory=list)
    grant_tokens_checked: bool = False
    #: Whether a decision on a key (not ``*``, not an alias) was taken.
    key_authorized: bool = False

    @property
    def default_action(self) -> str | None:
        """The action a key found for this request is authorised with; None for operations
        not on a key (authorised by IAM alone, once, before the operation runs)."""
        return _DEFAULT_ACTIONS.get(self.operation)

    def record(self, action: str, resource: str, decision: Decision, *, on_key: bool) -> None:
        """Remember a decision; ``on_key`` for decisions on a KMS key."""
        self.decisions.append(Authorization(action, resource, decision))
        if on_key:
            self.key_authorized = True


_DEFAULT_ACTIONS = {operation: action_for(operation) for operation in KEY_OPERATIONS}
