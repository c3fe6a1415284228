"""Grant rows (schema version 3, the access-control block of schema.sql).

A mixin of :class:`kms_service.store.metadata.MetadataStore`, kept in its own module so the
grant queries sit together. Every change runs inside the store's ``write()`` transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from kms_service.store.tables import StoreTables


@dataclass(frozen=True)
class GrantRecord:
    """One grant. ``operations`` are grant operation names (``Decrypt``...);
    ``constraints`` is the GrantConstraints object or None."""

    grant_id: str
    account_id: str
    region: str
    key_id: str
    grant_token: str
    name: str | None
    grantee_principal: str
    retiring_principal: str | None
    issuing_account: str
    operations: tuple[str, ...]
    constraints: dict[str, Any] | None
    creation_date: float

    @property
    def key_arn(self) -> str:
        return f"arn:aws:kms:{self.region}:{self.account_id}:key/{self.key_id}"


_COLUMNS = (
    "grant_id, account_id, region, key_id, grant_token, name, grantee_principal,"
    " retiring_principal, issuing_account, operations, constraints, creation_date"
)


def _grant(row: Sequence[Any]) -> GrantRecord:
    values = list(row)
    values[9] = tuple(json.loads(values[9]))
    values[10] = json.loads(values[10]) if values[10] is not None else None
    return GrantRecord(*values)


class GrantTables(StoreTables):
    """Grant queries over the store's per-thread connection."""

    def insert_grant(self, grant: GrantRecord) -> None:
        self._execute(
            f"INSERT INTO grants ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",  # noqa: S608
            (
                grant.grant_id,
                grant.account_id,
                grant.region,
                grant.key_id,
                grant.grant_token,
                grant.name,
                grant.grantee_principal,
                grant.retiring_principal,
                grant.issuing_account,
                json.dumps(list(grant.operations)),
                json.dumps(grant.constraints) if grant.constraints is not None else None,
                grant.creation_date,
            ),
        )

    def delete_grant(self, grant: GrantRecord) -> None:
        self._execute("DELETE FROM grants WHERE grant_id = ?", (grant.grant_id,))

    def grant_by_id(self, grant_id: str) -> GrantRecord | None:
        row = self._execute(
            f"SELECT {_COLUMNS} FROM grants WHERE grant_id = ?",  # noqa: S608
            (grant_id,),
        ).fetchone()
        return None if row is None else _grant(row)

    def grant_by_token(self, token: str) -> GrantRecord | None:
        row = self._execute(
            f"SELECT {_COLUMNS} FROM grants WHERE grant_token = ?",  # noqa: S608
            (token,),
        ).fetchone()
        return None if row is None else _grant(row)

    def grant_by_name(
        self, account_id: str, region: str, key_id: str, name: str
    ) -> GrantRecord | None:
        row = self._execute(
            f"SELECT {_COLUMNS} FROM grants WHERE account_id = ? AND region = ?"  # noqa: S608
            " AND key_id = ? AND name = ?",
            (account_id, region, key_id, name),
        ).fetchone()
        return None if row is None else _grant(row)

    def count_grants(self, account_id: str, region: str, key_id: str) -> int:
        return int(
            self._execute(
                "SELECT count(*) FROM grants WHERE account_id = ? AND region = ? AND key_id = ?",
                (account_id, region, key_id),
            ).fetchone()[0]
        )

    def grants_for_grantee(
        self, account_id: str, region: str, key_id: str, grantees: Sequence[str]
    ) -> list[GrantRecord]:
        """The key's grants whose grantee is one of ``grantees``."""
        marks = ", ".join("?" for _ in grantees)
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM grants WHERE account_id = ? AND region = ?"  # noqa: S608
            f" AND key_id = ? AND grantee_principal IN ({marks})",
            (account_id, region, key_id, *grantees),
        ).fetchall()
        return [_grant(row) for row in rows]

    def list_grants(
        self,
        account_id: str,
        region: str,
        key_id: str,
        after: str | None,
        limit: int,
        grant_id: str | None = None,
        grantee_principal: str | None = None,
    ) -> list[GrantRecord]:
        """A key's grants by grant id, after ``after``, optionally filtered."""
        sql = (
            f"SELECT {_COLUMNS} FROM grants WHERE account_id = ? AND region = ?"  # noqa: S608
            " AND key_id = ? AND grant_id > ?"
        )
        params: list[Any] = [account_id, region, key_id, after or ""]
        if grant_id is not None:
            sql += " AND grant_id = ?"
            params.append(grant_id)
        if grantee_principal is not None:
            sql += " AND grantee_principal = ?"
            params.append(grantee_principal)
        sql += " ORDER BY grant_id LIMIT ?"
        params.append(limit)
        return [_grant(row) for row in self._execute(sql, params).fetchall()]

    def list_retirable_grants(
        self, retiring_principal: str, region: str, after: str | None, limit: int
    ) -> list[GrantRecord]:
        """Grants in ``region`` whose retiring principal is ``retiring_principal``."""
        rows = self._execute(
            f"SELECT {_COLUMNS} FROM grants WHERE retiring_principal = ? AND region = ?"  # noqa: S608
            " AND grant_id > ? ORDER BY grant_id LIMIT ?",
            (retiring_principal, region, after or "", limit),
        ).fetchall()
        return [_grant(row) for row in rows]
