"""Service settings rows: a mixin of :class:`kms_service.store.metadata.MetadataStore`."""

from __future__ import annotations

from kms_service.store.tables import StoreTables


class ServiceSettingsTables(StoreTables):
    """Settings shared by every worker (clock offset, faults)."""

    def service_settings(self) -> dict[str, str]:
        rows = self._execute("SELECT name, value FROM service_settings").fetchall()
        return {str(row[0]): str(row[1]) for row in rows}

    def set_service_setting(self, name: str, value: str | None) -> None:
        """Set ``name`` to ``value``; None removes it."""
        if value is None:
            self._execute("DELETE FROM service_settings WHERE name = ?", (name,))
            return
        self._execute(
            "INSERT INTO service_settings (name, value) VALUES (?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            (name, value),
        )
