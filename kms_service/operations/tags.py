"""Tags on keys: TagResource, UntagResource, ListResourceTags and AWS's tag rules."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from kms_service.domain.errors import TagException
from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.pagination import decode_marker, page_limit, paginate
from kms_service.operations.resolve import (
    reload_key,
    require_customer_managed,
    require_state,
    resolve_key,
)

MAX_TAGS_PER_KEY = 50

Request = dict[str, Any]
Response = dict[str, Any]

# TagResource and UntagResource work in every state but PendingDeletion (and the transient ones).
_TAGGABLE_STATES = (
    KeyState.ENABLED,
    KeyState.DISABLED,
    KeyState.PENDING_IMPORT,
    KeyState.UNAVAILABLE,
)


def check_new_tags(
    tags: Sequence[dict[str, str]], *, existing: Iterable[str]
) -> list[tuple[str, str]]:
    """Validate tags to add to a key that already has ``existing`` tag keys.

    Raises :class:`TagException` for reserved ``aws:`` keys, duplicates in one request, and
    more than 50 tags on the key.
    """
    pairs = [(tag["TagKey"], tag["TagValue"]) for tag in tags]
    keys = [key for key, _ in pairs]
    if any(key.lower().startswith("aws:") for key in keys):
        raise TagException("Tags beginning with aws: are reserved")
    if len(set(keys)) != len(keys):
        raise TagException("Duplicate tag keys")
    if len(set(existing) | set(keys)) > MAX_TAGS_PER_KEY:
        raise TagException("Too many tags")
    return pairs


def tag_resource(services: Services, scope: RequestScope, request: Request) -> None:
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        require_state(
            key,
            allow=(
                KeyState.ENABLED,
                KeyState.DISABLED,
                KeyState.PENDING_IMPORT,
                KeyState.UNAVAILABLE,
            ),
        )
        existing = [tag_key for tag_key, _ in services.store.tags(key)]
        services.store.put_tags(key, check_new_tags(request["Tags"], existing=existing))


def untag_resource(services: Services, scope: RequestScope, request: Request) -> None:
    """Unknown tag keys are ignored silently, as on AWS."""
    key = resolve_key(services, scope, request["KeyId"])
    with services.store.write():
        key = reload_key(services, key)
        require_customer_managed(key)
        require_state(
            key,
            allow=(
                KeyState.ENABLED,
                KeyState.DISABLED,
                KeyState.PENDING_IMPORT,
                KeyState.UNAVAILABLE,
            ),
        )
        services.store.delete_tags(key, request["TagKeys"])


def list_resource_tags(services: Services, scope: RequestScope, request: Request) -> Response:
    key = resolve_key(services, scope, request["KeyId"])
    limit = page_limit(request, default=50, maximum=50)
    after = decode_marker(request.get("Marker"))
    rows = [pair for pair in services.store.tags(key) if after is None or pair[0] > after]
    shown = rows[:limit]
    items = [{"TagKey": k, "TagValue": v} for k, v in shown]
    return paginate(rows, limit, shown[-1][0] if shown else None, "Tags", items)
