"""Imported key material and import wrapping keys (GetParametersForImport,
ImportKeyMaterial): a mixin of :class:`kms_service.store.metadata.MetadataStore`."""

from __future__ import annotations

from kms_service.store.records import ImportedMaterialRecord, KeyRecord, WrappingKeyRecord
from kms_service.store.tables import StoreTables


class ImportTables(StoreTables):
    """Queries on ``import_wrapping_keys`` and ``imported_materials``."""

    def insert_wrapping_key(self, record: WrappingKeyRecord) -> None:
        self._execute(
            "INSERT INTO import_wrapping_keys (wrapping_key_id, account_id, region, key_id,"
            " backend, wrapping_algorithm, wrapping_key_spec, created, valid_to)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.wrapping_key_id,
                record.account_id,
                record.region,
                record.key_id,
                record.backend,
                record.wrapping_algorithm,
                record.wrapping_key_spec,
                record.created,
                record.valid_to,
            ),
        )

    def get_wrapping_key(self, wrapping_key_id: str) -> WrappingKeyRecord | None:
        row = self._execute(
            "SELECT wrapping_key_id, account_id, region, key_id, backend, wrapping_algorithm,"
            " wrapping_key_spec, created, valid_to FROM import_wrapping_keys"
            " WHERE wrapping_key_id = ?",
            (wrapping_key_id,),
        ).fetchone()
        return None if row is None else WrappingKeyRecord(*row)

    def expired_wrapping_keys(self, now: float) -> list[WrappingKeyRecord]:
        rows = self._execute(
            "SELECT wrapping_key_id, account_id, region, key_id, backend, wrapping_algorithm,"
            " wrapping_key_spec, created, valid_to FROM import_wrapping_keys"
            " WHERE valid_to <= ?",
            (now,),
        ).fetchall()
        return [WrappingKeyRecord(*row) for row in rows]

    def delete_wrapping_key(self, wrapping_key_id: str) -> None:
        self._execute(
            "DELETE FROM import_wrapping_keys WHERE wrapping_key_id = ?", (wrapping_key_id,)
        )

    def imported_materials(self, key: KeyRecord) -> list[ImportedMaterialRecord]:
        """The key's imported material, oldest import first."""
        rows = self._execute(
            "SELECT material_id, account_id, region, key_id, import_state, pending_rotation,"
            " expiration_model, valid_to, description, check_value, imported"
            " FROM imported_materials WHERE account_id = ? AND region = ? AND key_id = ?"
            " ORDER BY imported, material_id",
            (key.account_id, key.region, key.key_id),
        ).fetchall()
        return [
            ImportedMaterialRecord(
                material_id=row[0],
                account_id=row[1],
                region=row[2],
                key_id=row[3],
                import_state=row[4],
                pending_rotation=bool(row[5]),
                expiration_model=row[6],
                valid_to=row[7],
                description=row[8],
                check_value=bytes(row[9]),
                imported=row[10],
            )
            for row in rows
        ]

    def put_imported_material(self, record: ImportedMaterialRecord) -> None:
        """Insert or replace the import details of one material."""
        self._execute(
            "INSERT INTO imported_materials (material_id, account_id, region, key_id,"
            " import_state, pending_rotation, expiration_model, valid_to, description,"
            " check_value, imported) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (material_id) DO UPDATE SET import_state = excluded.import_state,"
            " pending_rotation = excluded.pending_rotation,"
            " expiration_model = excluded.expiration_model, valid_to = excluded.valid_to,"
            " description = excluded.description, imported = excluded.imported",
            (
                record.material_id,
                record.account_id,
                record.region,
                record.key_id,
                record.import_state,
                int(record.pending_rotation),
                record.expiration_model,
                record.valid_to,
                record.description,
                record.check_value,
                record.imported,
            ),
        )
