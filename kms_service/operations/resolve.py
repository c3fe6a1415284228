"""Turning the identifiers callers send (key id, key ARN, alias name, alias ARN) into keys.

Resolution also applies the lazy parts of the key lifecycle, so that a key whose scheduled
deletion has passed is gone and a key whose automatic rotation fell due has rotated by the
time any operation sees it.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

from backends.base import BackendError
from kms_service.domain.errors import (
    AccessDeniedException,
    DisabledException,
    KMSInvalidStateException,
    NotFoundException,
    UnsupportedOperationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.authorization import authorize_key
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.creation import create_key_record
from kms_service.operations.imported import expire_due_material
from kms_service.operations.material import destroy_pending_material, new_material
from kms_service.store import KeyRecord

KEY_ID_PATTERN = re.compile(
    r"^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|mrk-[0-9a-f]{32})$"
)
_ARN_PATTERN = re.compile(
    r"^arn:aws(?:-cn|-us-gov)?:kms:(?P<region>[^:]*):(?P<account>[^:]*):(?P<resource>.*)$"
)
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class KeyReference:
    """A parsed identifier: exactly one of ``key_id`` and ``alias_name`` is set."""

    account_id: str
    region: str
    key_id: str | None = None
    alias_name: str | None = None


#: Parsed references by (value, caller's account, caller's region, aliases allowed): a client
#: names the same few keys on every request. Bounded (cleared when full), as the values are
#: whatever clients send; only successful parses are kept.
_REFERENCES: dict[tuple[str, str, str, bool], KeyReference] = {}
_REFERENCES_LIMIT = 4096


def parse_reference(scope: RequestScope, value: str, *, allow_alias: bool) -> KeyReference:
    """Parse ``value`` as AWS does for a ``KeyId`` member.

    Raises :class:`NotFoundException` with AWS's wording for malformed ids, ARNs of another
    region, and aliases where the operation takes only a key id or key ARN.
    """
    cache_key = (value, scope.account_id, scope.region, allow_alias)
    reference = _REFERENCES.get(cache_key)
    if reference is None:
        reference = _parse_reference(scope, value, allow_alias=allow_alias)
        if len(_REFERENCES) >= _REFERENCES_LIMIT:
            _REFERENCES.clear()
        _REFERENCES[cache_key] = reference
    return reference


def _parse_reference(scope: RequestScope, value: str, *, allow_alias: bool) -> KeyReference:
    match = _ARN_PATTERN.match(value)
    if match:
        region, account, resource = match["region"], match["account"], match["resource"]
        if region != scope.region:
            raise NotFoundException(f"Invalid arn {region}")
        if resource.startswith("key/"):
            key_id = resource[4:]
            if not KEY_ID_PATTERN.match(key_id):
                raise NotFoundException(f"Invalid keyId '{value}'")
            return KeyReference(account, region, key_id=key_id)
        if resource.startswith("alias/") and allow_alias:
            return KeyReference(account, region, alias_name=resource)
        raise NotFoundException(f"Invalid keyId '{value}'")
    if value.startswith("alias/") and allow_alias:
        return KeyReference(scope.account_id, scope.region, alias_name=value)
    if not KEY_ID_PATTERN.match(value):
        raise NotFoundException(f"Invalid keyId '{value}'")
    return KeyReference(scope.account_id, scope.region, key_id=value)


def resolve_key(
    services: Services,
    scope: RequestScope,
    value: str,
    *,
    allow_alias: bool = False,
    cross_account: bool | None = None,
    action: str | None = None,
) -> KeyRecord:
    """The key ``value`` names, after lazy deletion and rotation, once the caller is
    authorised to perform ``action`` (default: the operation's own) on it.

    Raises :class:`NotFoundException` (AWS wording, ARN in the message) when there is none.
    AWS managed keys behind ``alias/aws/<service>`` are created on first use, as on AWS.
    ``cross_account`` (default: ``allow_alias``, since on AWS the operations that take an
    alias are the ones usable across accounts) says whether another account's key ARN may be
    used; if not, it raises :class:`AccessDeniedException`, as AWS does whatever the policy.
    Authorisation (key policy, IAM, grants) raises :class:`AccessDeniedException` too, before
    any key-state check: this is the one place every operation on a key is authorised
    (docs/access-control.md).
    """
    reference = parse_reference(scope, value, allow_alias=allow_alias)
    if reference.account_id != scope.account_id and not (
        allow_alias if cross_account is None else cross_account
    ):
        raise AccessDeniedException(
            f"User: {scope.principal_arn} is not authorized to perform this operation on "
            f"resource: {value} because the operation does not support KMS keys in other "
            "accounts"
        )
    if reference.alias_name is not None:
        alias_arn = f"arn:aws:kms:{reference.region}:{reference.account_id}:{reference.alias_name}"
        alias = services.store.get_alias(
            reference.account_id, reference.region, reference.alias_name
        )
        if alias is None:
            if reference.alias_name.startswith("alias/aws/") and reference.account_id == (
                scope.account_id
            ):
                managed = _aws_managed_key(services, scope, reference.alias_name)
                authorize_key(services, scope, managed, action=action, requested=value)
                return managed
            raise NotFoundException(f"Alias {alias_arn} is not found.")
        key_id = alias.target_key_id
    else:
        assert reference.key_id is not None  # parse_reference guarantees it
        key_id = reference.key_id
    key = services.store.get_key(reference.account_id, reference.region, key_id)
    if key is not None:
        key = apply_due_lifecycle(services, key)
    # --- custom key stores (docs/custom-key-stores.md): a key whose store is not connected
    # is Unavailable, and every state check refuses it as AWS does.
    if key is not None and services.key_stores is not None:
        key = services.key_stores.effective(key)
    # --- end of custom key stores
    if key is None:
        raise NotFoundException(
            f"Key 'arn:aws:kms:{reference.region}:{reference.account_id}:key/{key_id}' "
            "does not exist"
        )
    authorize_key(services, scope, key, action=action, requested=value)
    return key


def apply_due_lifecycle(services: Services, key: KeyRecord) -> KeyRecord | None:
    """Complete a due deletion (returns None), expire imported material whose ValidTo has
    passed, or complete a due automatic rotation (returns the key)."""
    now = services.clock.now()
    if key.valid_to is not None and key.valid_to <= now:
        expired = expire_due_material(services, key, now)
        if expired is None:
            return None
        key = expired
    if key.state == KeyState.PENDING_DELETION and key.deletion_date is not None:
        if key.deletion_date <= now:
            delete_key_now(services, key)
            return None
        return key
    if (
        key.rotation_enabled
        and key.state == KeyState.ENABLED
        and key.next_rotation_date is not None
        and key.next_rotation_date <= now
    ):
        return rotate_automatically(services, key, now)
    return key


def delete_key_now(services: Services, key: KeyRecord) -> None:
    """Delete ``key`` from the store, then destroy its material in the backend.

    The store queues the material ids in the same transaction, so a crash after the commit
    still destroys them at the next start (:func:`destroy_pending_material`).
    """
    with services.store.write():
        current = services.store.get_key(key.account_id, key.region, key.key_id)
        if current is None or current.state != KeyState.PENDING_DELETION:
            return
        services.store.delete_key(current)
    destroy_pending_material(services)


def rotate_automatically(services: Services, key: KeyRecord, now: float) -> KeyRecord:
    """Give ``key`` new current material because its rotation date has passed."""
    material_id = new_material(services, key.backend)
    with services.store.write():
        current = services.store.get_key(key.account_id, key.region, key.key_id)
        due = (
            current is not None
            and current.rotation_enabled
            and current.state == KeyState.ENABLED
            and current.next_rotation_date is not None
            and current.next_rotation_date <= now
        )
        if current is not None and due:
            period = float(current.rotation_period_days or 365) * SECONDS_PER_DAY
            services.store.add_material(current, material_id, now, "AUTOMATIC")
            services.store.update_key(current, next_rotation_date=now + period)
            current = services.store.get_key(key.account_id, key.region, key.key_id) or current
    if not due:
        # Another worker rotated (or deleted) the key first: this material is nobody's.
        with contextlib.suppress(BackendError):
            services.backend(key.backend).destroy_material(material_id)
    return current or key


def _aws_managed_key(services: Services, scope: RequestScope, alias_name: str) -> KeyRecord:
    """Create the AWS managed key for ``alias/aws/<service>`` on first use, as AWS does."""
    with services.store.write():
        alias = services.store.get_alias(scope.account_id, scope.region, alias_name)
        if alias is not None:
            key = services.store.get_key(scope.account_id, scope.region, alias.target_key_id)
            if key is not None:
                return key
        service_name = alias_name.removeprefix("alias/aws/")
        return create_key_record(
            services,
            scope,
            description=f"Default key that protects my {service_name} data when no other key "
            "is defined",
            key_manager="AWS",
            alias_name=alias_name,
        )


def require_state(key: KeyRecord, *, allow: tuple[str, ...]) -> None:
    """Raise AWS's key-state error unless ``key.state`` is one of ``allow``.

    Disabled → :class:`DisabledException`; PendingDeletion, PendingImport, Unavailable →
    :class:`KMSInvalidStateException`, with AWS's messages.
    """
    if key.state in allow:
        return
    if key.state == KeyState.DISABLED:
        raise DisabledException(f"{key.arn} is disabled.")
    wording = {
        KeyState.PENDING_DELETION: "is pending deletion.",
        KeyState.PENDING_REPLICA_DELETION: "is pending replica deletion.",
        KeyState.PENDING_IMPORT: "is pending import.",
        KeyState.UNAVAILABLE: "is unavailable.",
        KeyState.CREATING: "is creating.",
        KeyState.UPDATING: "is updating.",
        KeyState.ENABLED: "is enabled.",
    }.get(key.state, "is not in a valid state for this operation.")
    raise KMSInvalidStateException(f"{key.arn} {wording}")


def reload_key(services: Services, key: KeyRecord) -> KeyRecord:
    """Re-read ``key`` inside a write transaction, so a check and the change it guards see
    one state. Raises :class:`NotFoundException` if another request deleted it meanwhile."""
    current = services.store.get_key(key.account_id, key.region, key.key_id)
    if current is None:
        raise NotFoundException(f"Key '{key.arn}' does not exist")
    return current


def require_customer_managed(key: KeyRecord) -> None:
    """AWS managed keys cannot be changed by the account that uses them."""
    if key.key_manager == "AWS":
        raise UnsupportedOperationException(
            f"{key.arn} is an AWS managed key, which you cannot change."
        )
