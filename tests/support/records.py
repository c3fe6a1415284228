"""Store records for unit tests that write the metadata store directly."""

from __future__ import annotations

from typing import Any

from kms_service.domain.key_states import KeyState
from kms_service.store import KeyRecord

DEFAULT_KEY_ID = "1234abcd-12ab-34cd-56ef-1234567890ab"


def key_record(**overrides: Any) -> KeyRecord:
    """A customer-managed, enabled symmetric key on the software backend in 111122223333 /
    us-east-1; ``overrides`` replace any field."""
    fields: dict[str, Any] = {
        "account_id": "111122223333",
        "region": "us-east-1",
        "key_id": DEFAULT_KEY_ID,
        "description": "",
        "key_usage": "ENCRYPT_DECRYPT",
        "key_spec": "SYMMETRIC_DEFAULT",
        "origin": "AWS_KMS",
        "key_manager": "CUSTOMER",
        "state": KeyState.ENABLED,
        "creation_date": 0.0,
        "deletion_date": None,
        "multi_region": False,
        "backend": "software",
        "rotation_enabled": False,
        "rotation_period_days": None,
        "next_rotation_date": None,
        "on_demand_rotations": 0,
        "policy": "{}",
    }
    fields.update(overrides)
    return KeyRecord(**fields)
