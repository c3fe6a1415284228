"""Key deletion through boto3: ScheduleKeyDeletion, CancelKeyDeletion, and the deletion that
really happens when the window ends (the clock moved forward across a restart)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.kms_ops import (
    NO_MESSAGE,
    KmsClient,
    account_client,
    alias_arn,
    create_key,
    expect_error,
    key_arn,
    keystore_material_ids,
    metadata_material_ids,
    new_account_id,
)
from tests.support.server import running_server

DAY = 86400.0
MISSING_KEY = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


# --- ScheduleKeyDeletion -------------------------------------------------------------------
def test_schedule_deletion_default_window(kms: KmsClient, key: dict[str, Any]) -> None:
    before = time.time()
    response = _without_metadata(kms.schedule_key_deletion(KeyId=key["KeyId"]))
    assert set(response) == {"KeyId", "DeletionDate", "KeyState", "PendingWindowInDays"}
    assert response["KeyId"] == key["Arn"]
    assert response["KeyState"] == "PendingDeletion"
    assert response["PendingWindowInDays"] == 30
    deletion = response["DeletionDate"].timestamp()
    assert before + 30 * DAY - 5 <= deletion <= time.time() + 30 * DAY + 5
    metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert metadata["KeyState"] == "PendingDeletion"
    assert metadata["Enabled"] is False
    assert metadata["DeletionDate"] == response["DeletionDate"]
    assert "PendingDeletionWindowInDays" not in metadata  # only for PendingReplicaDeletion


@pytest.mark.parametrize("window", [7, 8, 29, 30])
def test_schedule_deletion_windows(kms: KmsClient, key: dict[str, Any], window: int) -> None:
    before = time.time()
    response = kms.schedule_key_deletion(KeyId=key["Arn"], PendingWindowInDays=window)
    assert response["PendingWindowInDays"] == window
    deletion = response["DeletionDate"].timestamp()
    assert before + window * DAY - 5 <= deletion <= time.time() + window * DAY + 5


@pytest.mark.parametrize("window", [1, 6, 31, 365])
def test_schedule_deletion_window_out_of_range(
    kms: KmsClient, key: dict[str, Any], window: int
) -> None:
    with expect_error(
        "ValidationException",
        f"1 validation error detected: Value '{window}' at 'pendingWindowInDays' failed to "
        "satisfy constraint: Member must have value greater than or equal to 7 and less than "
        "or equal to 30",
    ):
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=window)
    assert kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]["KeyState"] == "Enabled"


def test_schedule_deletion_of_a_disabled_key(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.disable_key(KeyId=key["KeyId"])
    assert kms.schedule_key_deletion(KeyId=key["KeyId"])["KeyState"] == "PendingDeletion"


def test_schedule_deletion_twice(kms: KmsClient, key: dict[str, Any]) -> None:
    first = kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=7)
    with expect_error("KMSInvalidStateException", f"{key['Arn']} is pending deletion."):
        kms.schedule_key_deletion(KeyId=key["KeyId"], PendingWindowInDays=30)
    metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert metadata["DeletionDate"] == first["DeletionDate"]


def test_schedule_deletion_errors(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.create_alias(AliasName="alias/del", TargetKeyId=key["KeyId"])
    with expect_error("NotFoundException", "Invalid keyId 'alias/del'"):
        kms.schedule_key_deletion(KeyId="alias/del")
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.schedule_key_deletion(KeyId=MISSING_KEY)
    with expect_error("NotFoundException", f"Key '{key_arn(kms, MISSING_KEY)}' does not exist"):
        kms.cancel_key_deletion(KeyId=MISSING_KEY)


# --- CancelKeyDeletion ---------------------------------------------------------------------
def test_cancel_deletion_leaves_the_key_disabled(kms: KmsClient, key: dict[str, Any]) -> None:
    blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=b"saved")["CiphertextBlob"]
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    response = _without_metadata(kms.cancel_key_deletion(KeyId=key["Arn"]))
    assert response == {"KeyId": key["Arn"]}
    metadata = kms.describe_key(KeyId=key["KeyId"])["KeyMetadata"]
    assert (metadata["KeyState"], metadata["Enabled"]) == ("Disabled", False)
    assert "DeletionDate" not in metadata
    with expect_error("DisabledException", f"{key['Arn']} is disabled."):
        kms.decrypt(CiphertextBlob=blob)
    kms.enable_key(KeyId=key["KeyId"])
    assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"saved"


def test_cancel_deletion_of_a_key_not_pending(kms: KmsClient, key: dict[str, Any]) -> None:
    message = f"{key['Arn']} is not pending deletion."
    with expect_error("KMSInvalidStateException", message):
        kms.cancel_key_deletion(KeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    with expect_error("KMSInvalidStateException", message):
        kms.cancel_key_deletion(KeyId=key["KeyId"])


def test_rotation_status_false_while_pending(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.enable_key_rotation(KeyId=key["KeyId"])
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    status = kms.get_key_rotation_status(KeyId=key["KeyId"])
    assert status["KeyRotationEnabled"] is False
    assert "NextRotationDate" not in status
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    assert kms.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is True


def test_pending_deletion_key_is_still_listed(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.create_alias(AliasName="alias/pending", TargetKeyId=key["KeyId"])
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [key["KeyId"]]
    assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]] == ["alias/pending"]


# --- Deletion completes when the window ends -----------------------------------------------
def test_deletion_completes_after_the_window(tmp_path: Path) -> None:
    """A 7-day deletion is done 8 days later: the key, its aliases and its material are gone
    and its ciphertexts fail. A 30-day one is still pending; a cancelled one survives."""
    data_dir = tmp_path / "data"
    account = new_account_id()
    with running_server(data_dir) as server:
        kms = account_client(server.endpoint, account)
        doomed = create_key(kms, Tags=[{"TagKey": "t", "TagValue": "v"}])
        kms.rotate_key_on_demand(KeyId=doomed["KeyId"])
        kms.create_alias(AliasName="alias/doomed", TargetKeyId=doomed["KeyId"])
        kms.create_alias(AliasName="alias/doomed-too", TargetKeyId=doomed["KeyId"])
        blob = kms.encrypt(KeyId=doomed["KeyId"], Plaintext=b"secret")["CiphertextBlob"]
        old_blob = kms.encrypt(KeyId="alias/doomed", Plaintext=b"old")["CiphertextBlob"]
        rotations = kms.list_key_rotations(
            KeyId=doomed["KeyId"], IncludeKeyMaterial="ALL_KEY_MATERIAL"
        )["Rotations"]
        doomed_materials = {r["KeyMaterialId"] for r in rotations}
        assert len(doomed_materials) == 2
        slow = create_key(kms)
        kms.create_alias(AliasName="alias/slow", TargetKeyId=slow["KeyId"])
        saved = create_key(kms)
        kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
        kms.schedule_key_deletion(KeyId=slow["KeyId"], PendingWindowInDays=30)
        kms.schedule_key_deletion(KeyId=saved["KeyId"], PendingWindowInDays=7)
        kms.cancel_key_deletion(KeyId=saved["KeyId"])
        assert doomed_materials <= keystore_material_ids(data_dir)

    offset = str(int(8 * DAY))
    with running_server(data_dir, env={"MOCK_KMS_CLOCK_OFFSET_SECONDS": offset}) as server:
        kms = account_client(server.endpoint, account)
        # Touching the key completes its deletion.
        with expect_error("NotFoundException", f"Key '{doomed['Arn']}' does not exist"):
            kms.describe_key(KeyId=doomed["KeyId"])
        assert doomed_materials.isdisjoint(keystore_material_ids(data_dir))
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=blob)
        with expect_error("InvalidCiphertextException", NO_MESSAGE):
            kms.decrypt(CiphertextBlob=old_blob)
        with expect_error("NotFoundException", f"Key '{doomed['Arn']}' does not exist"):
            kms.decrypt(CiphertextBlob=blob, KeyId=doomed["Arn"])
        for operation in (kms.list_resource_tags, kms.get_key_rotation_status):
            with expect_error("NotFoundException", f"Key '{doomed['Arn']}' does not exist"):
                operation(KeyId=doomed["KeyId"])
        with expect_error(
            "NotFoundException", f"Alias {alias_arn(kms, 'alias/doomed')} is not found."
        ):
            kms.describe_key(KeyId="alias/doomed")
        assert {a["AliasName"] for a in kms.list_aliases()["Aliases"]} == {"alias/slow"}
        listed = {k["KeyId"] for k in kms.list_keys()["Keys"]}
        assert listed == {slow["KeyId"], saved["KeyId"]}
        slow_metadata = kms.describe_key(KeyId=slow["KeyId"])["KeyMetadata"]
        assert slow_metadata["KeyState"] == "PendingDeletion"
        saved_metadata = kms.describe_key(KeyId=saved["KeyId"])["KeyMetadata"]
        assert saved_metadata["KeyState"] == "Disabled"
        # The alias names are free again.
        kms.create_alias(AliasName="alias/doomed", TargetKeyId=saved["KeyId"])
        assert slow["CurrentKeyMaterialId"] in keystore_material_ids(data_dir)
        assert keystore_material_ids(data_dir) == metadata_material_ids(data_dir)


def test_list_operations_complete_due_deletions(tmp_path: Path) -> None:
    """ListAliases and ListKeys alone (no touch of the key itself) no longer show a key whose
    window ended, nor its aliases, and its material is destroyed."""
    data_dir = tmp_path / "data"
    account = new_account_id()
    with running_server(data_dir, workers=1) as server:
        kms = account_client(server.endpoint, account)
        doomed = create_key(kms)
        kept = create_key(kms)
        kms.create_alias(AliasName="alias/doomed", TargetKeyId=doomed["KeyId"])
        kms.create_alias(AliasName="alias/kept", TargetKeyId=kept["KeyId"])
        kms.schedule_key_deletion(KeyId=doomed["KeyId"], PendingWindowInDays=7)
    offset = str(int(8 * DAY))
    env = {"MOCK_KMS_CLOCK_OFFSET_SECONDS": offset}
    with running_server(data_dir, workers=1, env=env) as server:
        kms = account_client(server.endpoint, account)
        assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]] == ["alias/kept"]
        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [kept["KeyId"]]
        assert doomed["CurrentKeyMaterialId"] not in keystore_material_ids(data_dir)
        assert kept["CurrentKeyMaterialId"] in keystore_material_ids(data_dir)
