"""Seed files: declare keys with fixed ids (and their material, rotation history, aliases,
tags and policies) and have every start reconcile the store with them.

Two formats are read: mock-kms's own (:mod:`kms_service.seeding.native`, which
``mock-kms export`` writes) and local-kms's ``seed.yaml`` (:mod:`kms_service.seeding.localkms`).
"""

from __future__ import annotations

from pathlib import Path

from kms_service.seeding.document import SeedError, parse_yaml
from kms_service.seeding.localkms import looks_like_local_kms, parse_local_kms
from kms_service.seeding.model import SeedDocument
from kms_service.seeding.native import parse_native


def parse_seed(text: str, source: str) -> SeedDocument:
    """Parse seed text in either format. Raises :class:`SeedError` naming line and field."""
    root = parse_yaml(text, source)
    if not root.is_mapping():
        raise root.error("a seed file is a mapping with keys: (or local-kms's Keys:)")
    if looks_like_local_kms(root):
        return parse_local_kms(root)
    return parse_native(root)


def load_seed_file(path: Path) -> SeedDocument:
    """Read and parse a seed file. Raises :class:`SeedError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SeedError(str(path), None, "", f"cannot read the seed file: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise SeedError(str(path), None, "", "the seed file is not UTF-8 text") from None
    return parse_seed(text, str(path))


__all__ = ["SeedDocument", "SeedError", "load_seed_file", "parse_seed"]
