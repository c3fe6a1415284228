"""Creating a key: metadata, first key material, tags and an optional alias, in one go."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Sequence

from kms_service.domain.key_states import KeyState
from kms_service.operations.context import RequestScope, Services
from kms_service.operations.material import new_material
from kms_service.store import AliasRecord, KeyRecord

SECONDS_PER_DAY = 86400.0
AWS_MANAGED_ROTATION_DAYS = 365


def default_policy(account_id: str) -> str:
    """AWS's default key policy text, byte for byte (pretty-printed with ``" : "``)."""
    return (
        "{\n"
        '  "Version" : "2012-10-17",\n'
        '  "Id" : "key-default-1",\n'
        '  "Statement" : [ {\n'
        '    "Sid" : "Enable IAM User Permissions",\n'
        '    "Effect" : "Allow",\n'
        '    "Principal" : {\n'
        f'      "AWS" : "arn:aws:iam::{account_id}:root"\n'
        "    },\n"
        '    "Action" : "kms:*",\n'
        '    "Resource" : "*"\n'
        "  } ]\n"
        "}"
    )


def new_key_id(multi_region: bool) -> str:
    """A fresh key id: a lowercase UUID, or ``mrk-`` + 32 hex for multi-Region keys."""
    return f"mrk-{secrets.token_hex(16)}" if multi_region else str(uuid.uuid4())


def create_key_record(
    services: Services,
    scope: RequestScope,
    *,
    description: str = "",
    key_manager: str = "CUSTOMER",
    policy: str | None = None,
    tags: Sequence[tuple[str, str]] = (),
    multi_region: bool = False,
    alias_name: str | None = None,
    key_spec: str = "SYMMETRIC_DEFAULT",
    key_usage: str = "ENCRYPT_DECRYPT",
    backend_name: str | None = None,
    origin: str = "AWS_KMS",
) -> KeyRecord:
    """Create a key of ``key_spec`` and ``key_usage`` (already checked against each other
    and against the backend's capabilities) with fresh material on ``backend_name`` (default:
    the default backend; a custom key store id for keys in a key store, with ``origin``
    ``AWS_CLOUDHSM``, docs/custom-key-stores.md). An ``EXTERNAL`` key gets no material and
    starts in PendingImport (docs/key-import.md).

    Joins the caller's transaction if there is one. AWS managed keys (``key_manager="AWS"``)
    rotate yearly, as on AWS.
    """
    now = services.clock.now()
    backend_name = backend_name or services.default_backend
    external = origin == "EXTERNAL"
    material_id = None if external else new_material(services, backend_name, key_spec)
    aws_managed = key_manager == "AWS"
    key = KeyRecord(
        account_id=scope.account_id,
        region=scope.region,
        key_id=new_key_id(multi_region),
        description=description,
        key_usage=key_usage,
        key_spec=key_spec,
        origin=origin,
        key_manager=key_manager,
        state=KeyState.PENDING_IMPORT if external else KeyState.ENABLED,
        creation_date=now,
        deletion_date=None,
        multi_region=multi_region,
        backend=backend_name,
        rotation_enabled=aws_managed,
        rotation_period_days=AWS_MANAGED_ROTATION_DAYS if aws_managed else None,
        next_rotation_date=now + AWS_MANAGED_ROTATION_DAYS * SECONDS_PER_DAY
        if aws_managed
        else None,
        on_demand_rotations=0,
        policy=policy or default_policy(scope.account_id),
    )
    with services.store.write():
        services.store.insert_key(key)
        if material_id is not None:
            services.store.add_material(key, material_id, now, None)
        if tags:
            services.store.put_tags(key, tags)
        if alias_name is not None:
            services.store.insert_alias(
                AliasRecord(scope.account_id, scope.region, alias_name, key.key_id, now, now)
            )
        created = services.store.get_key(key.account_id, key.region, key.key_id)
    assert created is not None  # inserted in this transaction
    return created
