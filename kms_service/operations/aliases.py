"""Aliases: CreateAlias, UpdateAlias, DeleteAlias, ListAliases and AWS's naming rules."""

from __future__ import annotations

import re
from typing import Any

from kms_service.domain.errors import (
    AlreadyExistsException,
    InvalidAliasNameException,
    LimitExceededException,
    NotAuthorizedException,
    NotFoundException,
    ValidationException,
)
from kms_service.domain.key_states import KeyState
from kms_service.operations.authorization import authorize_key
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.keys import purge_due_deletions
from kms_service.operations.pagination import decode_marker, page_limit, paginate
from kms_service.operations.resolve import (
    reload_key,
    require_customer_managed,
    require_state,
    resolve_key,
)
from kms_service.store import AliasRecord, KeyRecord

MAX_ALIASES_PER_KEY = 50
_ALIAS_BODY = re.compile(r"^[a-zA-Z0-9/_-]+$")

Request = dict[str, Any]
Response = dict[str, Any]


def check_alias_name(name: str) -> None:
    """AWS's alias-name rules beyond the model pattern; raises the matching AWS error."""
    if not name.startswith("alias/"):
        raise ValidationException(
            'Alias must start with the prefix "alias/". Please see '
            "https://docs.aws.amazon.com/kms/latest/developerguide/kms-alias.html"
        )
    if name.startswith("alias/aws/"):
        raise NotAuthorizedException()
    if not _ALIAS_BODY.match(name.removeprefix("alias/")):
        raise InvalidAliasNameException(f"{name} contains invalid characters for an alias")


def _refuse_pending_deletion(key: KeyRecord) -> None:
    """An alias cannot be made to point at a key pending deletion (or, for a multi-Region
    primary, pending replica deletion): AWS's KMSInvalidStateException."""
    if key.state in (KeyState.PENDING_DELETION, KeyState.PENDING_REPLICA_DELETION):
        require_state(key, allow=())


def _target(services: Services, scope: RequestScope, target: str) -> KeyRecord:
    key = resolve_key(services, scope, target)
    require_customer_managed(key)
    _refuse_pending_deletion(key)
    return key


def create_alias(services: Services, scope: RequestScope, request: Request) -> None:
    name = request["AliasName"]
    check_alias_name(name)
    key = _target(services, scope, request["TargetKeyId"])
    now = services.clock.now()
    with services.store.write():
        key = reload_key(services, key)
        _refuse_pending_deletion(key)
        if services.store.count_aliases(key) >= MAX_ALIASES_PER_KEY:
            raise LimitExceededException(
                f"Cannot exceed quota for AliasesPerKey: {MAX_ALIASES_PER_KEY}"
            )
        record = AliasRecord(scope.account_id, scope.region, name, key.key_id, now, now)
        if not services.store.insert_alias(record):
            raise AlreadyExistsException(
                f"An alias with the name {scope.alias_arn(name)} already exists"
            )


def update_alias(services: Services, scope: RequestScope, request: Request) -> None:
    """Point an alias at another key; the old target may be pending deletion, the new not."""
    name = request["AliasName"]
    if name.startswith("alias/aws/"):
        raise NotAuthorizedException()
    key = _target(services, scope, request["TargetKeyId"])
    with services.store.write():
        alias = services.store.get_alias(scope.account_id, scope.region, name)
        if alias is None:
            raise NotFoundException(f"Alias {scope.alias_arn(name)} is not found.")
        # kms:UpdateAlias is needed on the key the alias leaves too (docs/access-control.md).
        previous = services.store.get_key(scope.account_id, scope.region, alias.target_key_id)
        if previous is not None and previous.key_id != key.key_id:
            authorize_key(services, scope, previous, requested=name)
        key = reload_key(services, key)
        _refuse_pending_deletion(key)
        # Retargeting an alias to the key it already names adds no alias to that key.
        if (
            alias.target_key_id != key.key_id
            and services.store.count_aliases(key) >= MAX_ALIASES_PER_KEY
        ):
            raise LimitExceededException(
                f"Cannot exceed quota for AliasesPerKey: {MAX_ALIASES_PER_KEY}"
            )
        services.store.retarget_alias(alias, key.key_id, services.clock.now())


def delete_alias(services: Services, scope: RequestScope, request: Request) -> None:
    name = request["AliasName"]
    if name.startswith("alias/aws/"):
        raise NotAuthorizedException()
    with services.store.write():
        alias = services.store.get_alias(scope.account_id, scope.region, name)
        if alias is None:
            raise NotFoundException(f"Alias {scope.alias_arn(name)} is not found.")
        # kms:DeleteAlias is needed on the key too (docs/access-control.md).
        target = services.store.get_key(scope.account_id, scope.region, alias.target_key_id)
        if target is not None:
            authorize_key(services, scope, target, requested=name)
        services.store.delete_alias(alias)


def list_aliases(services: Services, scope: RequestScope, request: Request) -> Response:
    """ListAliases; like ListKeys, completes due deletions first so that no alias of a key
    whose deletion window has ended is listed."""
    purge_due_deletions(services, scope)
    key_id = None
    if request.get("KeyId") is not None:
        key_id = resolve_key(services, scope, request["KeyId"]).key_id
    limit = page_limit(request, default=50, maximum=100)
    after = decode_marker(request.get("Marker"))
    rows = services.store.list_aliases(scope.account_id, scope.region, key_id, after, limit + 1)
    shown = rows[:limit]
    items = [
        {
            "AliasName": alias.alias_name,
            "AliasArn": alias.arn,
            "TargetKeyId": alias.target_key_id,
            "CreationDate": alias.creation_date,
            "LastUpdatedDate": alias.last_updated_date,
        }
        for alias in shown
    ]
    return paginate(rows, limit, shown[-1].alias_name if shown else None, "Aliases", items)
