"""What the store's table mixins use of :class:`kms_service.store.metadata.MetadataStore`.

Each area of the schema (grants, aliases, imported material, multi-Region members, custom key
stores, service settings) has its queries in a mixin of ``MetadataStore``, kept in its own
module so they sit together. The mixins inherit :class:`StoreTables`, which only declares, for
the type checker, the core methods that ``MetadataStore`` provides at run time. Every change
runs inside the store's ``write()`` transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from database import Rows


class StoreTables:
    """Base of the table mixins: the core of the store they query through."""

    if TYPE_CHECKING:
        # Provided by MetadataStore, which every subclass is mixed into.
        def _execute(self, sql: str, params: Sequence[Any] = ()) -> Rows: ...

        def _executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None: ...

        def _read_cache(self) -> dict[tuple[str, ...], Any] | None: ...
