"""The health strip on every console page: backends, store, version, clock."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata
from typing import Any

from database import DatabaseError
from kms_service.admin.lifecycle import clock_state
from kms_service.operations import Services
from kms_service.operations.shared_settings import SharedSettings

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class HealthItem:
    label: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ClockView:
    """The service clock: its offset from the wall clock and what time it is for keys."""

    offset_seconds: float
    now: str

    @property
    def moved(self) -> bool:
        return bool(self.offset_seconds)

    @property
    def offset_label(self) -> str:
        if not self.offset_seconds:
            return "real time (offset 0)"
        days = self.offset_seconds / SECONDS_PER_DAY
        return f"+{days:.2f} days ({self.offset_seconds:.0f} s)"


def version() -> str:
    try:
        return metadata.version("mock-kms")
    except metadata.PackageNotFoundError:
        return "unknown"


def clock_view(services: Services, shared: SharedSettings) -> ClockView:
    state = clock_state(services, shared)
    return ClockView(float(state["offset_seconds"]), str(state["now"]))


def _backend_detail(detail: dict[str, Any]) -> str:
    shown = []
    for name in ("token_label", "logged_in", "token_serial", "materials", "error"):
        if name in detail:
            shown.append(f"{name.replace('_', ' ')}: {detail[name]}")
    return ", ".join(shown)


def health_items(services: Services, shared: SharedSettings) -> list[HealthItem]:
    """One item per backend, then the store, the version and the clock. Never raises."""
    items = []
    for name, backend in services.backends.items():
        report = backend.health()
        label = "PKCS#11 token" if name == "pkcs11" else "software keystore"
        default = " (default)" if name == services.default_backend else ""
        items.append(HealthItem(label + default, report.ok, _backend_detail(report.detail)))
    try:
        counts = services.store.count_keys_by_state()
        engine = "PostgreSQL" if services.store.engine == "postgresql" else "SQLite"
        items.append(HealthItem("store", True, f"{engine}, {sum(counts.values())} keys"))
    except DatabaseError as exc:
        items.append(HealthItem("store", False, type(exc).__name__))
    items.append(HealthItem("version", True, version()))
    clock = clock_view(services, shared)
    items.append(HealthItem("clock", True, clock.offset_label))
    return items
