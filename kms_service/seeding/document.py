"""YAML with positions: every value of a seed file knows its line and its field path, so that
every error names both (``seed.yaml:14: keys[1].rotation.period_days: ...``).

PyYAML composes the file into nodes that carry marks; :func:`parse_yaml` turns them into
:class:`Node` values. Scalars keep their source text too, so that a 64-hex key or an ``0x...``
key id is read as written, never as YAML 1.1's idea of a number.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import yaml


class SeedError(Exception):
    """A seed file that cannot be applied; the message names the file, the line and the field."""

    def __init__(self, source: str, line: int | None, field: str, message: str) -> None:
        self.source = source
        self.line = line
        self.field = field
        self.message = message
        where = f"{source}:{line}" if line is not None else source
        super().__init__(f"{where}: {field}: {message}" if field else f"{where}: {message}")


@dataclass(frozen=True)
class Node:
    """One YAML value: a scalar (``value`` is str/int/float/bool/None/datetime, ``text`` its
    source), a list of nodes, or a dict of field name to node."""

    value: Any
    text: str | None
    line: int
    path: str
    source: str

    def error(self, message: str, field: str | None = None) -> SeedError:
        """A :class:`SeedError` at this node (or at its child ``field``)."""
        return SeedError(self.source, self.line, field or self.path or "(document)", message)

    def child_path(self, name: str | int) -> str:
        if isinstance(name, int):
            return f"{self.path}[{name}]"
        return f"{self.path}.{name}" if self.path else name

    # --- typed access -----------------------------------------------------------------------
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    def mapping(self) -> dict[str, Node]:
        if not isinstance(self.value, dict):
            raise self.error(f"must be a mapping, got {_kind(self)}")
        return self.value

    def items(self) -> list[Node]:
        if not isinstance(self.value, list):
            raise self.error(f"must be a list, got {_kind(self)}")
        return self.value

    def field(self, name: str) -> Node | None:
        """The child ``name`` of a mapping, or None when absent or null."""
        child = self.mapping().get(name)
        return None if child is None or child.value is None else child

    def require(self, name: str) -> Node:
        child = self.field(name)
        if child is None:
            raise SeedError(self.source, self.line, self.child_path(name), "is required")
        return child

    def only(self, allowed: Iterable[str]) -> None:
        """Raise for the first field of this mapping that is not in ``allowed``."""
        names = set(allowed)
        for name, child in self.mapping().items():
            if name not in names:
                raise child.error(f"unknown field; expected one of {', '.join(sorted(names))}")

    def string(self) -> str:
        if isinstance(self.value, list | dict) or self.value is None:
            raise self.error(f"must be a string, got {_kind(self)}")
        return self.text if self.text is not None else str(self.value)

    def integer(self) -> int:
        if isinstance(self.value, bool) or not isinstance(self.value, int):
            raise self.error(f"must be a whole number, got {_kind(self)}")
        return int(self.value)

    def boolean(self) -> bool:
        if not isinstance(self.value, bool):
            raise self.error(f"must be true or false, got {_kind(self)}")
        return self.value

    def timestamp(self) -> float:
        """Epoch seconds from a YAML timestamp, an ISO 8601 string or a number of seconds.
        A time without a zone is UTC."""
        value = self.value
        if isinstance(value, datetime):
            moment = value if value.tzinfo else value.replace(tzinfo=UTC)
            return moment.timestamp()
        if isinstance(value, date):
            return datetime(value.year, value.month, value.day, tzinfo=UTC).timestamp()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
        if isinstance(value, str):
            try:
                moment = datetime.fromisoformat(value.strip())
            except ValueError:
                pass
            else:
                return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
        raise self.error(
            "must be a date and time such as 2025-01-31T12:00:00Z (ISO 8601), "
            f"got {self.text or _kind(self)!r}"
        )


def _kind(node: Node) -> str:
    if node.value is None:
        return "nothing"
    if isinstance(node.value, dict):
        return "a mapping"
    if isinstance(node.value, list):
        return "a list"
    return repr(node.text if node.text is not None else node.value)


_PLAIN_TAGS = re.compile(r"^tag:yaml\.org,2002:(str|int|float|bool|null|timestamp)$")


def parse_yaml(text: str, source: str) -> Node:
    """Compose ``text`` into nodes. Raises :class:`SeedError` for YAML syntax errors,
    duplicate keys and anchors or tags a seed file has no use for."""
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return Node({}, None, 1, "", source)
        return _convert(loader, root, "", source)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise SeedError(source, line, "", f"not valid YAML: {exc.problem or exc}") from None
    except yaml.YAMLError as exc:
        raise SeedError(source, None, "", f"not valid YAML: {exc}") from None
    finally:
        loader.dispose()


def _convert(loader: yaml.SafeLoader, node: yaml.Node, path: str, source: str) -> Node:
    line = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        children: dict[str, Node] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                raise SeedError(source, key_node.start_mark.line + 1, path, "keys must be names")
            name = str(key_node.value)
            child_path = f"{path}.{name}" if path else name
            if name in children:
                raise SeedError(source, key_node.start_mark.line + 1, child_path, "appears twice")
            children[name] = _convert(loader, value_node, child_path, source)
        return Node(children, None, line, path, source)
    if isinstance(node, yaml.SequenceNode):
        items = [
            _convert(loader, item, f"{path}[{index}]", source)
            for index, item in enumerate(node.value)
        ]
        return Node(items, None, line, path, source)
    assert isinstance(node, yaml.ScalarNode)
    if not _PLAIN_TAGS.match(node.tag):
        raise SeedError(source, line, path, f"unsupported YAML tag {node.tag}")
    value = loader.construct_object(node, deep=True)
    return Node(value, str(node.value), line, path, source)
