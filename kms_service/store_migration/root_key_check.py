"""Proof that the root key ``migrate-store`` was given opens everything the source holds
wrapped under it, checked before anything is written to the target.

The wrapped rows are copied as they are, so the hosts of the new database need this same root
key: a wrong one found now is one line, not a fleet of hosts that cannot decrypt anything.
"""

from __future__ import annotations

from backends.base import BackendError
from kms_service.store_migration.plan import KEYSTORE, KMS
from kms_service.store_migration.snapshot import MigrationError, SourceSnapshot
from local_secrets.key_store_passwords import PasswordUnwrapError, unwrap_password
from s3_service.sse_s3 import MASTER_KEY_FILE, MasterKeyError, load_master_key


def verify_root_key(snapshot: SourceSnapshot, root_key: bytes, key_source: str) -> int:
    """Unwrap (and forget) every key material, custom key store password and the S3 master
    key of ``snapshot`` under ``root_key``; return how many materials opened.

    Raises :class:`MigrationError` naming ``key_source`` (where the key came from), never the
    key or any material.
    """
    wrong = (
        f"the root key from {key_source} does not open the key material of"
        f" {snapshot.data_dir}: give the root key that data directory was created with"
        " (its root.key, or the MOCK_KMS_ROOT_KEY its server ran with)"
    )
    keystore = snapshot.keystore
    assert keystore is not None
    opened = 0
    try:
        keystore.check_root_key()
        material_ids = [
            str(row[0])
            for row in snapshot.database(KEYSTORE).execute(
                "SELECT material_id FROM material ORDER BY material_id"
            )
        ]
        for material_id in material_ids:
            keystore.export_material(material_id)
            opened += 1
    except BackendError:
        raise MigrationError(wrong) from None
    rows = snapshot.database(KMS).execute(
        "SELECT store_id, password_nonce, password_wrapped FROM custom_key_stores"
        " WHERE password_wrapped IS NOT NULL"
    )
    for store_id, nonce, wrapped in rows:
        try:
            unwrap_password(root_key, str(store_id), bytes(nonce), bytes(wrapped))
        except PasswordUnwrapError:
            raise MigrationError(wrong) from None
    if (snapshot.s3_dir / MASTER_KEY_FILE).is_file():
        try:
            load_master_key(snapshot.s3_dir, root_key, create=False)
        except MasterKeyError as exc:
            raise MigrationError(str(exc)) from None
    return opened
