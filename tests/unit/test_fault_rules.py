"""Fault rules: validation naming the operation and field, and the injector's choices."""

from __future__ import annotations

import pytest

from kms_service.admin.faults import FaultConfigError, FaultInjector, parse_rules
from kms_service.domain.errors import KMSInternalException, ThrottlingException


@pytest.mark.parametrize(
    ("rules", "words"),
    [
        ({"Encrypt": {"ThrottlingException": 1.5}}, "Encrypt.ThrottlingException"),
        ({"Encrypt": {"Boom": 0.1}}, "Encrypt.Boom: unknown field"),
        ({"Encrypt": {"ThrottlingException": 0.6, "KMSInternalException": 0.6}}, "more than 1"),
        ({"Encrypt": {"latency_ms": [300, 100]}}, "min <= max"),
        ({"Encrypt": {"latency_ms": -1}}, "Encrypt.latency_ms"),
        ({"not an op!": {}}, "not an operation name"),
        (["Encrypt"], "mapping"),
    ],
)
def test_bad_fault_rules_name_operation_and_field(rules: object, words: str) -> None:
    with pytest.raises(FaultConfigError, match=words.replace("(", r"\(")):
        parse_rules(rules)


class _Shared:
    """A SharedSettings stand-in holding values in memory."""

    def __init__(self) -> None:
        self.data: dict[str, str] = {}

    def get(self, name: str) -> str | None:
        return self.data.get(name)

    def set(self, name: str, value: str | None) -> None:
        if value is None:
            self.data.pop(name, None)
        else:
            self.data[name] = value


def test_injector_applies_operation_rule_else_wildcard() -> None:
    shared = _Shared()
    slept: list[float] = []
    noted: list[tuple[str, str]] = []
    injector = FaultInjector(shared, on_fault=lambda o, f: noted.append((o, f)), sleep=slept.append)  # type: ignore[arg-type]
    injector.set_rules(
        parse_rules(
            {
                "Encrypt": {"ThrottlingException": 1.0, "latency_ms": 250},
                "*": {"KMSInternalException": 1.0},
            }
        )
    )
    with pytest.raises(ThrottlingException, match="injected by mock-kms"):
        injector.before_operation("Encrypt")
    assert slept == [0.25]
    with pytest.raises(KMSInternalException):
        injector.before_operation("Decrypt")
    assert noted == [
        ("Encrypt", "latency"),
        ("Encrypt", "ThrottlingException"),
        ("Decrypt", "KMSInternalException"),
    ]
    injector.set_rules({})
    injector.before_operation("Encrypt")  # no rules: nothing happens


def test_injector_rate_follows_probability() -> None:
    shared = _Shared()
    injector = FaultInjector(shared)  # type: ignore[arg-type]
    injector.set_rules(parse_rules({"Encrypt": {"ThrottlingException": 0.25}}))
    failures = 0
    for _ in range(4000):
        try:
            injector.before_operation("Encrypt")
        except ThrottlingException:
            failures += 1
    assert 0.2 < failures / 4000 < 0.3
