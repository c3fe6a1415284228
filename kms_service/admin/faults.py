"""Fault injection: make chosen operations fail or slow down, to test a caller's retry and
failure handling against the KMS.

Rules are a mapping from operation name (or ``"*"`` for every operation without its own
entry) to the probability of each injectable error, plus optional added latency::

    Encrypt:
      ThrottlingException: 0.2        # 20 % of Encrypt calls are throttled
      KMSInternalException: 0.05
      latency_ms: [50, 250]           # every Encrypt waits 50-250 ms first
    "*":
      DependencyTimeoutException: 0.01
      latency_ms: 100
      latency_probability: 0.1        # 10 % of other calls wait 100 ms

Rules are stored in the database (:mod:`kms_service.operations.shared_settings`), so the admin
endpoint changes them for every worker, and are applied by the wire layer after a request is
authenticated and validated, before its operation runs. Only with ``MOCK_KMS_DEV_ENDPOINTS=1``.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kms_service.domain.errors import (
    DependencyTimeoutException,
    KeyUnavailableException,
    KmsError,
    KMSInternalException,
    ThrottlingException,
)
from kms_service.operations.shared_settings import FAULTS, SharedSettings

#: The errors a rule may inject, with the message each is answered with.
INJECTABLE: dict[str, tuple[type[KmsError], str]] = {
    "ThrottlingException": (
        ThrottlingException,
        "You have exceeded the rate at which you may call KMS. Reduce the frequency of your calls.",
    ),
    "KMSInternalException": (KMSInternalException, "An internal error occurred."),
    "DependencyTimeoutException": (DependencyTimeoutException, "The request timed out."),
    "KeyUnavailableException": (KeyUnavailableException, "The key is unavailable."),
}
_SUFFIX = " (fault injected by mock-kms)"
_LATENCY_FIELDS = ("latency_ms", "latency_probability")
MAX_LATENCY_MS = 60_000


class FaultConfigError(ValueError):
    """Fault rules that cannot be used; the message names the operation and the field."""


@dataclass(frozen=True)
class FaultRule:
    """What to do to one operation's calls."""

    errors: tuple[tuple[str, float], ...] = ()
    latency_ms: tuple[float, float] = (0.0, 0.0)
    latency_probability: float = 1.0

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = dict(self.errors)
        low, high = self.latency_ms
        if high > 0:
            body["latency_ms"] = low if low == high else [low, high]
            if self.latency_probability != 1.0:
                body["latency_probability"] = self.latency_probability
        return body


def parse_rules(document: Any) -> dict[str, FaultRule]:
    """Validate a rules document (see the module docstring).

    Raises :class:`FaultConfigError` naming the operation and field at fault.
    """
    if document is None:
        return {}
    if not isinstance(document, Mapping):
        raise FaultConfigError("fault rules must be a mapping of operation name to rule")
    rules: dict[str, FaultRule] = {}
    for operation, body in document.items():
        if not isinstance(operation, str) or not (operation == "*" or operation.isalnum()):
            raise FaultConfigError(f'{operation!r}: not an operation name (or "*")')
        if not isinstance(body, Mapping):
            raise FaultConfigError(f"{operation}: must be a mapping of error name to probability")
        rules[operation] = _parse_rule(operation, body)
    return rules


def _parse_rule(operation: str, body: Mapping[str, Any]) -> FaultRule:
    errors: list[tuple[str, float]] = []
    for name, value in body.items():
        if name in _LATENCY_FIELDS:
            continue
        if name not in INJECTABLE:
            raise FaultConfigError(
                f"{operation}.{name}: unknown field; use one of "
                f"{', '.join([*INJECTABLE, *_LATENCY_FIELDS])}"
            )
        errors.append((name, _probability(f"{operation}.{name}", value)))
    if sum(p for _, p in errors) > 1.0 + 1e-9:
        raise FaultConfigError(f"{operation}: the error probabilities add up to more than 1")
    latency = body.get("latency_ms", 0)
    if isinstance(latency, list) and len(latency) == 2:
        low, high = (_latency(f"{operation}.latency_ms", v) for v in latency)
        if low > high:
            raise FaultConfigError(f"{operation}.latency_ms: [min, max] with min <= max")
    else:
        low = high = _latency(f"{operation}.latency_ms", latency)
    probability = _probability(
        f"{operation}.latency_probability", body.get("latency_probability", 1.0)
    )
    return FaultRule(tuple(errors), (low, high), probability)


def _probability(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise FaultConfigError(f"{field}: must be a probability between 0 and 1, got {value!r}")
    return float(value)


def _latency(field: str, value: Any) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 <= value <= MAX_LATENCY_MS
    ):
        raise FaultConfigError(
            f"{field}: must be milliseconds between 0 and {MAX_LATENCY_MS}, or [min, max]"
        )
    return float(value)


def rules_to_json(rules: Mapping[str, FaultRule]) -> str:
    return json.dumps({name: rule.as_json() for name, rule in rules.items()}, sort_keys=True)


def load_rules_file(path: Path) -> dict[str, FaultRule]:
    """Read rules from a YAML or JSON file. Raises :class:`FaultConfigError`."""
    import yaml

    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FaultConfigError(f"cannot read fault rules {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise FaultConfigError(f"fault rules {path} are not valid YAML/JSON: {exc}") from None
    try:
        return parse_rules(document)
    except FaultConfigError as exc:
        raise FaultConfigError(f"{path}: {exc}") from None


class FaultInjector:
    """Applies the shared rules to one request. Costs one dict lookup when no rule matches."""

    def __init__(
        self,
        shared: SharedSettings,
        on_fault: Callable[[str, str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._shared = shared
        self._on_fault = on_fault
        self._sleep = sleep
        self._parsed: tuple[str | None, dict[str, FaultRule]] = (None, {})

    def rules(self) -> dict[str, FaultRule]:
        """The rules in force (parsed once per change)."""
        raw = self._shared.get(FAULTS)
        cached_raw, rules = self._parsed
        if raw != cached_raw:
            try:
                rules = parse_rules(json.loads(raw)) if raw else {}
            except (ValueError, FaultConfigError):
                rules = {}  # only ever written validated; never fail requests over it
            self._parsed = (raw, rules)
        return rules

    def set_rules(self, rules: Mapping[str, FaultRule]) -> None:
        """Replace the rules for every worker (raises :class:`database.DatabaseError`)."""
        self._shared.set(FAULTS, rules_to_json(rules) if rules else None)

    def before_operation(self, operation: str) -> None:
        """Sleep and/or raise an injected error for ``operation``, as the rules say.

        Raises the injected :class:`KmsError`.
        """
        rules = self.rules()
        if not rules:
            return
        rule = rules.get(operation) or rules.get("*")
        if rule is None:
            return
        low, high = rule.latency_ms
        # Not cryptographic: fault draws only need to be uniform.
        if high > 0 and random.random() < rule.latency_probability:  # noqa: S311
            self._sleep(random.uniform(low, high) / 1000.0)  # noqa: S311
            self._note(operation, "latency")
        draw = random.random()  # noqa: S311
        for name, probability in rule.errors:
            if draw < probability:
                self._note(operation, name)
                error_class, message = INJECTABLE[name]
                raise error_class(message + _SUFFIX)
            draw -= probability

    def _note(self, operation: str, fault: str) -> None:
        if self._on_fault is not None:
            self._on_fault(operation, fault)
