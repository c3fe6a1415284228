"""What the Keys and One-key pages show, read through the store and the operations layer.

Listing applies the lazy parts of the key lifecycle exactly as ``ListKeys`` and every
operation do (:func:`apply_due_lifecycle`), so a key whose deletion or rotation came due is
shown as the API would describe it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from kms_service.operations import OPERATIONS, Services
from kms_service.operations.metadata import key_metadata
from kms_service.operations.resolve import apply_due_lifecycle
from kms_service.store import KeyRecord, MaterialRecord

#: How each key-material version came to be (``rotation_type`` in the store).
MATERIAL_ORIGINS = {
    None: "creation",
    "AUTOMATIC": "automatic rotation",
    "ON_DEMAND": "on-demand rotation",
    "IMPORT": "import",
}
SORT_COLUMNS = ("created", "id", "alias", "description", "kind", "state", "origin", "backend")


@dataclass(frozen=True)
class KeyRow:
    """One line of the Keys table."""

    key: KeyRecord
    aliases: tuple[str, ...]
    tags: tuple[tuple[str, str], ...]

    @property
    def kind(self) -> str:
        return f"{self.key.key_spec} / {self.key.key_usage}"

    @property
    def first_alias(self) -> str:
        return self.aliases[0] if self.aliases else ""


@dataclass(frozen=True)
class KeyFilter:
    """The Keys page's filters; empty strings mean "any"."""

    state: str = ""
    kind: str = ""
    alias: str = ""
    tag: str = ""
    search: str = ""
    sort: str = "created"
    descending: bool = False

    def matches(self, row: KeyRow) -> bool:
        if self.state and row.key.state != self.state:
            return False
        if self.kind and self.kind.lower() not in row.kind.lower():
            return False
        if self.alias and not any(self.alias.lower() in a.lower() for a in row.aliases):
            return False
        if self.tag and not _tag_matches(self.tag, row.tags):
            return False
        return not self.search or self.search.lower() in row.key.key_id.lower()


def _tag_matches(wanted: str, tags: Iterable[tuple[str, str]]) -> bool:
    """``name`` matches a tag key; ``name=value`` a tag key and its value (case-insensitive)."""
    name, has_value, value = wanted.partition("=")
    for tag_key, tag_value in tags:
        if tag_key.lower() != name.strip().lower():
            continue
        if not has_value or tag_value.lower() == value.strip().lower():
            return True
    return False


def scopes(services: Services) -> list[tuple[str, str]]:
    """Every (account, region) that holds keys, plus the server's default one, sorted."""
    found = {(key.account_id, key.region) for key in services.store.all_keys()}
    found.add((services.settings.account_id, services.settings.region))
    return sorted(found)


def key_rows(services: Services, account_id: str, region: str, wanted: KeyFilter) -> list[KeyRow]:
    """The keys of one account and region that pass ``wanted``, sorted as it asks."""
    store = services.store
    aliases: dict[str, list[str]] = {}
    for alias in store.list_aliases(account_id, region, None, None, 100_000):
        aliases.setdefault(alias.target_key_id, []).append(alias.alias_name)
    rows = []
    for key_id, _ in store.list_keys(account_id, region, None, 100_000):
        key = store.get_key(account_id, region, key_id)
        key = None if key is None else apply_due_lifecycle(services, key)
        if key is None:
            continue
        row = KeyRow(key, tuple(sorted(aliases.get(key_id, []))), tuple(store.tags(key)))
        if wanted.matches(row):
            rows.append(row)
    rows.sort(key=lambda row: _sort_value(row, wanted.sort), reverse=wanted.descending)
    return rows


def _sort_value(row: KeyRow, column: str) -> Any:
    key = row.key
    return {
        "id": key.key_id,
        "alias": row.first_alias or "\uffff",
        "description": key.description.lower(),
        "kind": row.kind,
        "state": str(key.state),
        "origin": key.origin,
        "backend": key.backend,
    }.get(column, key.creation_date)


@dataclass(frozen=True)
class MaterialView:
    """One key-material version on the One-key page."""

    material: MaterialRecord
    origin: str
    current: bool


@dataclass(frozen=True)
class KeyDetail:
    key: KeyRecord
    metadata: dict[str, Any]
    materials: list[MaterialView]
    aliases: list[str]
    tags: list[tuple[str, str]]
    policy: str
    grants: tuple[Mapping[str, Any], ...]
    extra: dict[str, Any] = field(default_factory=dict)


def material_views(key: KeyRecord, materials: Sequence[MaterialRecord]) -> list[MaterialView]:
    """Versions oldest first, each with how it came and whether it is current."""
    current_seq = materials[-1].seq if materials else -1
    views = []
    for material in materials:
        origin = MATERIAL_ORIGINS.get(material.rotation_type)
        if origin is None:
            origin = str(material.rotation_type).replace("_", " ").lower()
        if material.rotation_type is None and key.origin == "EXTERNAL":
            origin = "import"
        views.append(MaterialView(material, origin, material.seq == current_seq))
    return views


def pretty_policy(policy: str) -> str:
    """The key policy indented for reading; left as it is when it is not JSON."""
    try:
        return json.dumps(json.loads(policy), indent=2, ensure_ascii=False)
    except ValueError:
        return policy


def grants_of(services: Services, key: KeyRecord, scope: Any) -> tuple[Mapping[str, Any], ...]:
    """The key's grants, through the ``ListGrants`` operation (so access control applies to
    the console's caller as to any other)."""
    answer = OPERATIONS["ListGrants"](services, scope, {"KeyId": key.key_id}) or {}
    return tuple(answer.get("Grants", ()))


def key_detail(services: Services, key: KeyRecord, scope: Any) -> KeyDetail:
    """Everything the One-key page shows about ``key`` (never key material)."""
    store = services.store
    aliases = [
        alias.alias_name
        for alias in store.list_aliases(key.account_id, key.region, key.key_id, None, 100_000)
    ]
    return KeyDetail(
        key=key,
        metadata=key_metadata(key, store),
        materials=material_views(key, store.materials(key)),
        aliases=aliases,
        tags=store.tags(key),
        policy=pretty_policy(key.policy),
        grants=grants_of(services, key, scope),
    )


def find_key(services: Services, account_id: str, region: str, key_id: str) -> KeyRecord | None:
    """The key after its lazy lifecycle, or None when there is none (or it was just deleted)."""
    key = services.store.get_key(account_id, region, key_id)
    return None if key is None else apply_due_lifecycle(services, key)
