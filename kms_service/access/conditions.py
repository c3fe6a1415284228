"""The ``Condition`` element: AWS's condition operators over a request context.

A condition block ``{operator: {key: values}}`` is true when every key under every operator
is true (AND); the values listed for one key are alternatives (OR), and for a negated
operator (``StringNotEquals``...) the context value must match none of them. A key missing
from the request makes a positive operator false and a negated one true; ``...IfExists``
makes any operator true on a missing key; ``Null`` tests presence itself. ``ForAnyValue:``
and ``ForAllValues:`` compare multi-valued keys value by value. See docs/access-control.md
("Conditions") and the IAM User Guide page cited there.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Protocol

from kms_service.access.wildcards import arn_match, glob_match

ContextValue = str | tuple[str, ...]


class RequestContext(Protocol):
    """The condition keys of one request; keys are looked up lowercased."""

    def get(self, key: str) -> ContextValue | None: ...


class ConditionSyntaxError(ValueError):
    """A condition block that is not AWS's shape, or names an unknown operator."""


Comparator = Callable[[str, str], bool]


def _string_equals(policy: str, value: str) -> bool:
    return policy == value


def _string_equals_ignore_case(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


def _string_like(policy: str, value: str) -> bool:
    return glob_match(policy, value)


def _bool(policy: str, value: str) -> bool:
    return policy.lower() == value.lower()


def _binary(policy: str, value: str) -> bool:
    return policy == value


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _numeric(test: Callable[[float, float], bool]) -> Comparator:
    def compare(policy: str, value: str) -> bool:
        left, right = _number(value), _number(policy)
        return left is not None and right is not None and test(left, right)

    return compare


@lru_cache(maxsize=1024)
def _date(text: str) -> float | None:
    """Epoch seconds of an ISO 8601 date/time or of an epoch number, as AWS accepts both."""
    number = _number(text)
    if number is not None:
        return number
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _dated(test: Callable[[float, float], bool]) -> Comparator:
    def compare(policy: str, value: str) -> bool:
        left, right = _date(value), _date(policy)
        return left is not None and right is not None and test(left, right)

    return compare


@lru_cache(maxsize=1024)
def _network(text: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network | None:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        return None


def _ip_address(policy: str, value: str) -> bool:
    network = _network(policy)
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    return network is not None and address.version == network.version and address in network


def _arn_like(policy: str, value: str) -> bool:
    return arn_match(policy, value)


#: Base operator name (lowercase) → (comparator, negated).
_OPERATORS: dict[str, tuple[Comparator, bool]] = {
    "stringequals": (_string_equals, False),
    "stringnotequals": (_string_equals, True),
    "stringequalsignorecase": (_string_equals_ignore_case, False),
    "stringnotequalsignorecase": (_string_equals_ignore_case, True),
    "stringlike": (_string_like, False),
    "stringnotlike": (_string_like, True),
    "numericequals": (_numeric(lambda a, b: a == b), False),
    "numericnotequals": (_numeric(lambda a, b: a == b), True),
    "numericlessthan": (_numeric(lambda a, b: a < b), False),
    "numericlessthanequals": (_numeric(lambda a, b: a <= b), False),
    "numericgreaterthan": (_numeric(lambda a, b: a > b), False),
    "numericgreaterthanequals": (_numeric(lambda a, b: a >= b), False),
    "dateequals": (_dated(lambda a, b: a == b), False),
    "datenotequals": (_dated(lambda a, b: a == b), True),
    "datelessthan": (_dated(lambda a, b: a < b), False),
    "datelessthanequals": (_dated(lambda a, b: a <= b), False),
    "dategreaterthan": (_dated(lambda a, b: a > b), False),
    "dategreaterthanequals": (_dated(lambda a, b: a >= b), False),
    "bool": (_bool, False),
    "binaryequals": (_binary, False),
    "ipaddress": (_ip_address, False),
    "notipaddress": (_ip_address, True),
    "arnequals": (_arn_like, False),
    "arnlike": (_arn_like, False),
    "arnnotequals": (_arn_like, True),
    "arnnotlike": (_arn_like, True),
}
#: Operators whose policy values may hold policy variables (``${aws:username}``).
_VARIABLE_OPERATORS = frozenset(
    {
        "stringequals",
        "stringnotequals",
        "stringequalsignorecase",
        "stringnotequalsignorecase",
        "stringlike",
        "stringnotlike",
        "arnequals",
        "arnlike",
        "arnnotequals",
        "arnnotlike",
    }
)
_VARIABLE = re.compile(r"\$\{([^}]*)\}")


@dataclass(frozen=True)
class Test:
    """One ``operator: {key: values}`` entry, parsed."""

    operator: str
    key: str  # lowercased: condition key names are case-insensitive
    values: tuple[str, ...]
    qualifier: str | None  # "foranyvalue", "forallvalues" or None
    if_exists: bool
    is_null: bool
    comparator: Comparator | None
    negated: bool
    has_variables: bool

    def evaluate(self, context: RequestContext) -> bool:
        """Whether this test holds for ``context``."""
        present = context.get(self.key)
        if self.is_null:
            absent = present is None or present == ()
            return any((v.lower() == "true") == absent for v in self.values)
        if present is None or present == ():
            if self.if_exists:
                return True
            if self.qualifier == "forallvalues":
                return True
            if self.qualifier == "foranyvalue":
                return False
            return self.negated
        values = self.values
        if self.has_variables:
            values = tuple(
                v for v in (substitute(value, context) for value in values) if v is not None
            )
        assert self.comparator is not None
        compare = self.comparator
        items: Sequence[str] = (present,) if isinstance(present, str) else present
        matched = [any(compare(policy, item) for policy in values) for item in items]
        if self.negated:
            matched = [not m for m in matched]
        if self.qualifier == "forallvalues":
            return all(matched)
        if self.negated and self.qualifier is None:
            # A negated operator on a multi-valued key without a set qualifier: no value
            # of the request may match any value of the policy.
            return all(matched)
        return any(matched)


def substitute(text: str, context: RequestContext) -> str | None:
    """Replace policy variables in ``text``; None when one names a key the request lacks
    (and gives no default), which makes that policy value match nothing, as on AWS."""
    if "${" not in text:
        return text
    missing = False

    def replace(match: re.Match[str]) -> str:
        nonlocal missing
        inner = match.group(1)
        if inner in ("*", "?", "$"):
            return inner
        name, _, default = inner.partition(",")
        value = context.get(name.strip().lower())
        if isinstance(value, str):
            return value
        default = default.strip()
        if default.startswith("'") and default.endswith("'") and len(default) >= 2:
            return default[1:-1]
        missing = True
        return ""

    result = _VARIABLE.sub(replace, text)
    return None if missing else result


def parse_conditions(block: object) -> tuple[Test, ...]:
    """Parse a ``Condition`` element. Raises :class:`ConditionSyntaxError`."""
    if not isinstance(block, dict):
        raise ConditionSyntaxError("Condition must be a JSON object")
    tests: list[Test] = []
    for operator, entries in block.items():
        if not isinstance(operator, str) or not isinstance(entries, dict):
            raise ConditionSyntaxError(f"Condition operator {operator!r} must map keys to values")
        name = operator.lower()
        qualifier: str | None = None
        for prefix in ("foranyvalue:", "forallvalues:"):
            if name.startswith(prefix):
                qualifier, name = prefix[:-1], name[len(prefix) :]
        if_exists = name.endswith("ifexists") and name != "ifexists"
        if if_exists:
            name = name[: -len("ifexists")]
        is_null = name == "null"
        if is_null and if_exists:
            raise ConditionSyntaxError("Null cannot take the IfExists suffix")
        if not is_null and name not in _OPERATORS:
            raise ConditionSyntaxError(f"Unknown condition operator {operator!r}")
        comparator, negated = (None, False) if is_null else _OPERATORS[name]
        for key, raw in entries.items():
            values = raw if isinstance(raw, list) else [raw]
            texts: list[str] = []
            for value in values:
                if isinstance(value, bool):
                    texts.append("true" if value else "false")
                elif isinstance(value, (str, int, float)):
                    texts.append(str(value))
                else:
                    raise ConditionSyntaxError(f"Condition value for {key!r} must be a string")
            if not isinstance(key, str) or not key:
                raise ConditionSyntaxError("Condition keys must be non-empty strings")
            tests.append(
                Test(
                    operator=operator,
                    key=key.lower(),
                    values=tuple(texts),
                    qualifier=qualifier,
                    if_exists=if_exists,
                    is_null=is_null,
                    comparator=comparator,
                    negated=negated,
                    has_variables=name in _VARIABLE_OPERATORS and any("${" in t for t in texts),
                )
            )
    return tuple(tests)


def variable_keys(texts: Sequence[str]) -> set[str]:
    """The context keys the policy variables in ``texts`` read (lowercased)."""
    keys: set[str] = set()
    for text in texts:
        for match in _VARIABLE.finditer(text):
            inner = match.group(1)
            if inner not in ("*", "?", "$"):
                keys.add(inner.partition(",")[0].strip().lower())
    return keys
