"""Which tables ``migrate-store`` copies, from which SQLite file, in which order.

Parents come before the tables whose foreign keys name them (``keys`` before
``key_materials``, ``tags``, ``grants``...). A table the source holds that is not listed here
stops the migration (see :func:`unknown_tables`): a table added to a schema without being
added here would otherwise be silently left behind.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Component:
    """One SQLite file of a data directory and the tables copied from it."""

    #: Short name used in the report ("kms", "keystore", "s3").
    name: str
    #: Tables in copy order (parents first).
    tables: tuple[str, ...]
    #: Tables of the file that are deliberately not copied (the target keeps its own).
    not_copied: tuple[str, ...] = ()


#: The key store (kms_service/store/schema.sql and its schema steps).
KMS = Component(
    "kms",
    (
        "keys",
        "key_materials",
        "tags",
        "aliases",
        "imported_materials",
        "multi_region_members",
        "grants",
        "import_wrapping_keys",
        "custom_key_stores",
        "pending_destruction",
        "service_settings",
    ),
)
#: The software keystore (backends/software.py). ``root_key_check`` is not copied: the
#: target's row is written (or checked) under the same root key before the copy.
KEYSTORE = Component("keystore", ("material", "wrapping_key"), not_copied=("root_key_check",))
#: The S3 records (s3_service/store.py).
S3 = Component("s3", ("buckets", "objects", "segments", "uploads", "parts"))

COMPONENTS = (KMS, KEYSTORE, S3)


def unknown_tables(component: Component, tables: Iterable[str]) -> list[str]:
    """The tables of ``tables`` (a source file's) that ``component`` neither copies nor
    deliberately leaves out, sorted."""
    known = set(component.tables) | set(component.not_copied)
    return sorted(set(tables) - known)
