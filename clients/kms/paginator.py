"""boto3-style paginators for the KMS list operations (``Limit``/``Marker`` in,
``NextMarker``/``Truncated`` out, as in botocore's ``paginators-1.json`` for KMS).

``Truncated`` drives pagination: a page with ``Truncated`` false or absent is the last one,
whatever ``NextMarker`` says, exactly as botocore behaves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from clients.kms.errors import PaginationError

#: Paginated operation (PascalCase) -> the response member holding its items.
RESULT_KEYS: dict[str, str] = {
    "DescribeCustomKeyStores": "CustomKeyStores",
    "ListAliases": "Aliases",
    "ListGrants": "Grants",
    "ListKeyPolicies": "PolicyNames",
    "ListKeyRotations": "Rotations",
    "ListKeys": "Keys",
    "ListResourceTags": "Tags",
    "ListRetirableGrants": "Grants",
}

Caller = Callable[..., dict[str, Any]]


class PageIterator:
    """Iterates over the pages (response dictionaries) of one listing.

    ``PaginationConfig`` keys, as in boto3: ``PageSize`` (sent as ``Limit``), ``StartingToken``
    (sent as ``Marker`` on the first request) and ``MaxItems`` (stop after that many items; the
    last page's item list is cut short).
    """

    def __init__(
        self, call: Caller, operation: str, params: dict[str, Any], config: dict[str, Any]
    ) -> None:
        self._call = call
        self._operation = operation
        self._params = params
        self._result_key = RESULT_KEYS[operation]
        self._page_size: int | None = config.get("PageSize")
        self._starting_token: str | None = config.get("StartingToken")
        self._max_items: int | None = config.get("MaxItems")

    def __iter__(self) -> Iterator[dict[str, Any]]:
        params = dict(self._params)
        if self._page_size is not None:
            params["Limit"] = self._page_size
        marker = self._starting_token
        seen: set[str] = set()
        remaining = self._max_items
        while True:
            if marker is not None:
                params["Marker"] = marker
            page = self._call(self._operation, **params)
            items = page.get(self._result_key, [])
            if remaining is not None:
                if len(items) >= remaining:
                    page[self._result_key] = items[:remaining]
                    yield page
                    return
                remaining -= len(items)
            yield page
            marker = page.get("NextMarker")
            if not page.get("Truncated") or not marker:
                return
            if marker in seen:
                raise PaginationError(
                    f"{self._operation} returned the marker {marker!r} twice; stopping"
                )
            seen.add(marker)

    def build_full_result(self) -> dict[str, Any]:
        """All items of every page merged under the result key, as boto3's method does."""
        items: list[Any] = []
        for page in self:
            items.extend(page.get(self._result_key, []))
        return {self._result_key: items}


class Paginator:
    """``client.get_paginator(name)``: ``paginate(**params)`` returns a :class:`PageIterator`."""

    def __init__(self, call: Caller, operation: str) -> None:
        if operation not in RESULT_KEYS:
            raise ValueError(f"Operation cannot be paginated: {operation}")
        self._call = call
        self._operation = operation

    def paginate(self, **params: Any) -> PageIterator:
        """Pages of the listing called with ``params``; ``PaginationConfig`` as in boto3."""
        config = dict(params.pop("PaginationConfig", None) or {})
        return PageIterator(self._call, self._operation, params, config)
