"""Opaque pagination markers and page limits (``Limit``/``Marker``/``NextMarker``/``Truncated``)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from typing import Any, TypeVar

from kms_service.domain.errors import InvalidMarkerException

T = TypeVar("T")
_PREFIX = "mk1:"


def encode_marker(last_sort_key: str) -> str:
    """An opaque marker that resumes after ``last_sort_key``."""
    return base64.urlsafe_b64encode((_PREFIX + last_sort_key).encode()).decode()


def decode_marker(marker: str | None) -> str | None:
    """The sort key a marker resumes after; raises :class:`InvalidMarkerException`."""
    if marker is None:
        return None
    try:
        text = base64.urlsafe_b64decode(marker.encode("ascii")).decode()
    except (binascii.Error, UnicodeError, ValueError):
        raise InvalidMarkerException("Invalid marker") from None
    if not text.startswith(_PREFIX):
        raise InvalidMarkerException("Invalid marker")
    return text[len(_PREFIX) :]


def page_limit(request: dict[str, Any], *, default: int, maximum: int) -> int:
    """The caller's ``Limit`` clamped to the operation's documented maximum."""
    limit = request.get("Limit")
    return default if limit is None else min(int(limit), maximum)


def paginate(
    rows: Sequence[T],
    limit: int,
    sort_key: str | None,
    items_key: str,
    items: list[Any],
) -> dict[str, Any]:
    """One page of a list response: ``{items_key: items, "Truncated": ..., "NextMarker": ...}``.

    ``rows`` holds up to ``limit + 1`` rows (one extra tells whether more follow); ``items``
    the rendered first ``limit`` of them; ``sort_key`` the sort key of the last one shown.
    """
    result: dict[str, Any] = {items_key: items}
    if len(rows) > limit and sort_key is not None:
        result["NextMarker"] = encode_marker(sort_key)
        result["Truncated"] = True
    else:
        result["Truncated"] = False
    return result
