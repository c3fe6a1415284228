"""Key rotation through boto3: EnableKeyRotation/DisableKeyRotation, GetKeyRotationStatus,
RotateKeyOnDemand, ListKeyRotations, and automatic rotation when it falls due."""

from __future__ import annotations

import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from tests.support.kms_ops import (
    MATERIAL_ID_PATTERN,
    KmsClient,
    account_client,
    account_of,
    create_key,
    expect_error,
    key_arn,
    keystore_material_ids,
    metadata_material_ids,
    new_account_id,
)
from tests.support.server import RunningServer, running_server

DAY = 86400.0
LIMIT_MESSAGE = (
    "The on-demand rotations limit has been reached for the given keyId. "
    "No more on-demand rotations can be performed for this key: {arn}"
)


def _status(kms: KmsClient, key_id: str) -> dict[str, Any]:
    response = dict(kms.get_key_rotation_status(KeyId=key_id))
    response.pop("ResponseMetadata")
    return response


def _current_material(kms: KmsClient, key_id: str) -> str:
    return str(kms.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"])


# --- Enable / Disable / GetKeyRotationStatus -----------------------------------------------
def test_rotation_is_off_by_default(kms: KmsClient, key: dict[str, Any]) -> None:
    assert _status(kms, key["KeyId"]) == {"KeyId": key["Arn"], "KeyRotationEnabled": False}


def test_enable_rotation_default_period(kms: KmsClient, key: dict[str, Any]) -> None:
    before = time.time()
    response = kms.enable_key_rotation(KeyId=key["KeyId"])
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    status = _status(kms, key["Arn"])
    assert set(status) == {
        "KeyId",
        "KeyRotationEnabled",
        "RotationPeriodInDays",
        "NextRotationDate",
    }
    assert status["KeyId"] == key["Arn"]
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 365
    next_date = status["NextRotationDate"].timestamp()
    assert before + 365 * DAY - 5 <= next_date <= time.time() + 365 * DAY + 5


@pytest.mark.parametrize("period", [90, 180, 2560])
def test_enable_rotation_with_period(kms: KmsClient, key: dict[str, Any], period: int) -> None:
    before = time.time()
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=period)
    status = _status(kms, key["KeyId"])
    assert status["RotationPeriodInDays"] == period
    next_date = status["NextRotationDate"].timestamp()
    assert before + period * DAY - 5 <= next_date <= time.time() + period * DAY + 5


def test_enable_rotation_again_changes_the_period(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=365)
    first = _status(kms, key["KeyId"])["NextRotationDate"].timestamp()
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=100)
    status = _status(kms, key["KeyId"])
    assert status["RotationPeriodInDays"] == 100
    assert abs(status["NextRotationDate"].timestamp() - (first - 265 * DAY)) < 5


def test_rotation_period_out_of_range(kms_server: RunningServer, key: dict[str, Any]) -> None:
    """botocore checks the minimum itself; the server checks both ends for other SDKs."""
    unchecked = account_client(kms_server.endpoint, key["AWSAccountId"], validate=False)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value '89' at 'rotationPeriodInDays' failed to satisfy "
        "constraint: Member must have value greater than or equal to 90",
    ):
        unchecked.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=89)
    with expect_error(
        "ValidationException",
        "1 validation error detected: Value '2561' at 'rotationPeriodInDays' failed to satisfy "
        "constraint: Member must have value less than or equal to 2560",
    ):
        unchecked.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=2561)
    assert unchecked.get_key_rotation_status(KeyId=key["KeyId"])["KeyRotationEnabled"] is False


def test_disable_rotation(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    response = kms.disable_key_rotation(KeyId=key["Arn"])
    assert response["ResponseMetadata"]["HTTPHeaders"]["content-length"] == "0"
    assert _status(kms, key["KeyId"]) == {"KeyId": key["Arn"], "KeyRotationEnabled": False}
    kms.disable_key_rotation(KeyId=key["KeyId"])  # idempotent
    kms.enable_key_rotation(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"])["RotationPeriodInDays"] == 365


def test_rotation_on_a_disabled_key(kms: KmsClient, key: dict[str, Any]) -> None:
    """Disabled: the status is readable and unchanged; changing it is DisabledException."""
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=200)
    before = _status(kms, key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == before
    message = f"{key['Arn']} is disabled."
    with expect_error("DisabledException", message):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    with expect_error("DisabledException", message):
        kms.disable_key_rotation(KeyId=key["KeyId"])
    with expect_error("DisabledException", message):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == before
    assert _current_material(kms, key["KeyId"]) == key["CurrentKeyMaterialId"]


def test_rotation_status_while_pending_deletion(kms: KmsClient, key: dict[str, Any]) -> None:
    """Pending deletion reports rotation off; CancelKeyDeletion brings the setting back."""
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=120)
    before = _status(kms, key["KeyId"])
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == {"KeyId": key["Arn"], "KeyRotationEnabled": False}
    message = f"{key['Arn']} is pending deletion."
    with expect_error("KMSInvalidStateException", message):
        kms.enable_key_rotation(KeyId=key["KeyId"])
    with expect_error("KMSInvalidStateException", message):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    kms.cancel_key_deletion(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == before


def test_rotation_operations_take_only_key_id_or_arn(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.create_alias(AliasName="alias/rot", TargetKeyId=key["KeyId"])
    for call in (
        kms.enable_key_rotation,
        kms.disable_key_rotation,
        kms.get_key_rotation_status,
        kms.rotate_key_on_demand,
        kms.list_key_rotations,
    ):
        with expect_error("NotFoundException", "Invalid keyId 'alias/rot'"):
            call(KeyId="alias/rot")
    missing = "0b5e4e4a-2b8a-4c9e-9d0f-5c0d2a1e3f47"
    with expect_error("NotFoundException", f"Key '{key_arn(kms, missing)}' does not exist"):
        kms.rotate_key_on_demand(KeyId=missing)


def test_aws_managed_key_rotation_cannot_change(kms: KmsClient) -> None:
    key_id = kms.describe_key(KeyId="alias/aws/s3")["KeyMetadata"]["KeyId"]
    status = _status(kms, key_id)
    assert status["KeyRotationEnabled"] is True
    assert status["RotationPeriodInDays"] == 365
    with expect_error("UnsupportedOperationException"):
        kms.disable_key_rotation(KeyId=key_id)
    with expect_error("UnsupportedOperationException"):
        kms.rotate_key_on_demand(KeyId=key_id)
    assert _status(kms, key_id) == status


# --- RotateKeyOnDemand ---------------------------------------------------------------------
def test_rotate_on_demand_creates_new_material(kms: KmsClient, key: dict[str, Any]) -> None:
    key_id, original = key["KeyId"], key["CurrentKeyMaterialId"]
    old_blob = kms.encrypt(KeyId=key_id, Plaintext=b"old", EncryptionContext={"v": "1"})[
        "CiphertextBlob"
    ]
    response = kms.rotate_key_on_demand(KeyId=key_id)
    assert {k: v for k, v in response.items() if k != "ResponseMetadata"} == {"KeyId": key["Arn"]}
    rotated = _current_material(kms, key_id)
    assert re.match(MATERIAL_ID_PATTERN, rotated)
    assert rotated != original
    # Old ciphertexts still decrypt, with the material that made them.
    old = kms.decrypt(CiphertextBlob=old_blob, EncryptionContext={"v": "1"})
    assert (old["Plaintext"], old["KeyMaterialId"]) == (b"old", original)
    # New ones use the new material.
    new_blob = kms.encrypt(KeyId=key_id, Plaintext=b"new")["CiphertextBlob"]
    assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == rotated
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")
    assert data_key["KeyMaterialId"] == rotated
    assert kms.decrypt(CiphertextBlob=data_key["CiphertextBlob"])["KeyMaterialId"] == rotated
    re_encrypted = kms.re_encrypt(
        CiphertextBlob=old_blob, SourceEncryptionContext={"v": "1"}, DestinationKeyId=key_id
    )
    assert re_encrypted["SourceKeyMaterialId"] == original
    assert re_encrypted["DestinationKeyMaterialId"] == rotated
    assert kms.decrypt(CiphertextBlob=re_encrypted["CiphertextBlob"])["KeyMaterialId"] == rotated
    # Rotation changes only the material.
    after = kms.describe_key(KeyId=key_id)["KeyMetadata"]
    assert {k: v for k, v in after.items() if k != "CurrentKeyMaterialId"} == {
        k: v for k, v in key.items() if k != "CurrentKeyMaterialId"
    }


def test_every_earlier_ciphertext_still_decrypts(kms: KmsClient, key: dict[str, Any]) -> None:
    blobs: list[tuple[bytes, bytes, str]] = []
    for generation in range(4):
        plaintext = f"generation {generation}".encode()
        blob = kms.encrypt(KeyId=key["KeyId"], Plaintext=plaintext)["CiphertextBlob"]
        blobs.append((blob, plaintext, _current_material(kms, key["KeyId"])))
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert len({material for _, _, material in blobs}) == 4
    for blob, plaintext, material in blobs:
        decrypted = kms.decrypt(CiphertextBlob=blob)
        assert (decrypted["Plaintext"], decrypted["KeyMaterialId"]) == (plaintext, material)


def test_rotate_on_demand_leaves_the_schedule_alone(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == {"KeyId": key["Arn"], "KeyRotationEnabled": False}
    kms.enable_key_rotation(KeyId=key["KeyId"], RotationPeriodInDays=90)
    before = _status(kms, key["KeyId"])
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    assert _status(kms, key["KeyId"]) == before
    assert "OnDemandRotationStartDate" not in before


def test_on_demand_rotation_limit(
    kms_server: RunningServer, kms: KmsClient, key: dict[str, Any]
) -> None:
    """25 on-demand rotations per key (the session server's default), then
    LimitExceededException, with no key material created for the refused rotation."""
    for _ in range(25):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    current = _current_material(kms, key["KeyId"])
    software = kms_server.env.get("MOCK_KMS_BACKEND", "software") == "software"
    data_dir, database_url = kms_server.data_dir, kms_server.database_url
    materials_before = set()
    if software:
        materials_before = keystore_material_ids(data_dir, database_url=database_url)
    with expect_error("LimitExceededException", LIMIT_MESSAGE.format(arn=key["Arn"])):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    if software:
        assert keystore_material_ids(data_dir, database_url=database_url) == materials_before
    assert _current_material(kms, key["KeyId"]) == current
    rotations = kms.list_key_rotations(KeyId=key["KeyId"], Limit=1000)["Rotations"]
    assert len(rotations) == 25
    other = create_key(kms)["KeyId"]  # the limit is per key
    kms.rotate_key_on_demand(KeyId=other)


# --- ListKeyRotations ----------------------------------------------------------------------
def test_list_key_rotations(kms: KmsClient, key: dict[str, Any]) -> None:
    key_id, original = key["KeyId"], key["CurrentKeyMaterialId"]
    empty = kms.list_key_rotations(KeyId=key_id)
    assert (empty["Rotations"], empty["Truncated"]) == ([], False)
    everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    assert everything["Rotations"] == [
        {"KeyId": key_id, "KeyMaterialId": original, "KeyMaterialState": "CURRENT"}
    ]
    before = time.time()
    kms.rotate_key_on_demand(KeyId=key_id)
    second = _current_material(kms, key_id)
    kms.rotate_key_on_demand(KeyId=key_arn(kms, key_id))
    third = _current_material(kms, key_id)
    rotations = kms.list_key_rotations(KeyId=key_id)["Rotations"]
    assert [(r["KeyMaterialId"], r["KeyMaterialState"]) for r in rotations] == [
        (second, "NON_CURRENT"),
        (third, "CURRENT"),
    ]
    for rotation in rotations:
        assert set(rotation) == {
            "KeyId",
            "KeyMaterialId",
            "KeyMaterialState",
            "RotationDate",
            "RotationType",
        }
        assert rotation["KeyId"] == key_id
        assert rotation["RotationType"] == "ON_DEMAND"
        assert before - 5 <= rotation["RotationDate"].timestamp() <= time.time() + 5
    explicit = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ROTATIONS_ONLY")
    assert explicit["Rotations"] == rotations
    everything = kms.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")[
        "Rotations"
    ]
    assert everything[0] == {
        "KeyId": key_id,
        "KeyMaterialId": original,
        "KeyMaterialState": "NON_CURRENT",
    }
    assert everything[1:] == rotations


def test_list_key_rotations_paginates(kms: KmsClient, key: dict[str, Any]) -> None:
    for _ in range(3):
        kms.rotate_key_on_demand(KeyId=key["KeyId"])
    paginator = kms.get_paginator("list_key_rotations")
    pages = list(paginator.paginate(KeyId=key["KeyId"], PaginationConfig={"PageSize": 2}))
    assert [len(page["Rotations"]) for page in pages] == [2, 1]
    assert [page["Truncated"] for page in pages] == [True, False]
    all_pages = list(
        paginator.paginate(
            KeyId=key["KeyId"],
            IncludeKeyMaterial="ALL_KEY_MATERIAL",
            PaginationConfig={"PageSize": 1},
        )
    )
    assert len(all_pages) == 4
    ids = [r["KeyMaterialId"] for page in all_pages for r in page["Rotations"]]
    assert len(set(ids)) == 4
    assert ids[0] == key["CurrentKeyMaterialId"]


@pytest.mark.parametrize("marker_kind", ["garbage", "other-operation"])
def test_list_key_rotations_bad_marker(
    kms: KmsClient, key: dict[str, Any], marker_kind: str
) -> None:
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    if marker_kind == "garbage":
        marker = "not a marker"
    else:  # a well-formed marker of another list: not one of ours either
        create_key(kms)
        marker = kms.list_keys(Limit=1)["NextMarker"]
    with expect_error("InvalidMarkerException"):
        kms.list_key_rotations(KeyId=key["KeyId"], Marker=marker)


def test_list_key_rotations_in_every_state(kms: KmsClient, key: dict[str, Any]) -> None:
    kms.rotate_key_on_demand(KeyId=key["KeyId"])
    kms.disable_key(KeyId=key["KeyId"])
    assert len(kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]) == 1
    kms.schedule_key_deletion(KeyId=key["KeyId"])
    assert len(kms.list_key_rotations(KeyId=key["KeyId"])["Rotations"]) == 1


# --- Automatic rotation, with the clock moved forward --------------------------------------
def test_automatic_rotation_happens_when_due(tmp_path: Path) -> None:
    """Restart the same data directory a year and a day later: rotation has happened for
    keys with rotation on, and only for them; old ciphertexts still decrypt."""
    data_dir = tmp_path / "data"
    account = new_account_id()
    with running_server(data_dir) as server:
        kms = account_client(server.endpoint, account)
        rotating = create_key(kms)
        kms.enable_key_rotation(KeyId=rotating["KeyId"])
        short = create_key(kms)
        kms.enable_key_rotation(KeyId=short["KeyId"], RotationPeriodInDays=90)
        still = create_key(kms)
        disabled = create_key(kms)
        kms.enable_key_rotation(KeyId=disabled["KeyId"])
        kms.disable_key(KeyId=disabled["KeyId"])
        old_blob = kms.encrypt(KeyId=rotating["KeyId"], Plaintext=b"last year")["CiphertextBlob"]
    offset = 366 * DAY
    with running_server(
        data_dir, env={"MOCK_KMS_CLOCK_OFFSET_SECONDS": str(int(offset))}
    ) as server:
        kms = account_client(server.endpoint, account)
        now = time.time() + offset
        rotated_material = _current_material(kms, rotating["KeyId"])
        assert rotated_material != rotating["CurrentKeyMaterialId"]
        rotations = kms.list_key_rotations(KeyId=rotating["KeyId"])["Rotations"]
        assert len(rotations) == 1
        assert rotations[0]["RotationType"] == "AUTOMATIC"
        assert rotations[0]["KeyMaterialId"] == rotated_material
        assert rotations[0]["KeyMaterialState"] == "CURRENT"
        status = _status(kms, rotating["KeyId"])
        assert status["RotationPeriodInDays"] == 365
        assert status["NextRotationDate"].timestamp() > now + 364 * DAY
        decrypted = kms.decrypt(CiphertextBlob=old_blob)
        assert decrypted["Plaintext"] == b"last year"
        assert decrypted["KeyMaterialId"] == rotating["CurrentKeyMaterialId"]
        new_blob = kms.encrypt(KeyId=rotating["KeyId"], Plaintext=b"this year")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=new_blob)["KeyMaterialId"] == rotated_material
        # A 90-day period was overdue four times over: it rotates once, now, and is rescheduled.
        short_rotations = kms.list_key_rotations(KeyId=short["KeyId"])["Rotations"]
        assert [r["RotationType"] for r in short_rotations] == ["AUTOMATIC"]
        assert _status(kms, short["KeyId"])["NextRotationDate"].timestamp() > now + 89 * DAY
        # Rotation off: nothing happens.
        assert _current_material(kms, still["KeyId"]) == still["CurrentKeyMaterialId"]
        assert kms.list_key_rotations(KeyId=still["KeyId"])["Rotations"] == []
        # A disabled key does not rotate; once re-enabled and overdue, it does.
        assert _current_material(kms, disabled["KeyId"]) == disabled["CurrentKeyMaterialId"]
        kms.enable_key(KeyId=disabled["KeyId"])
        assert _current_material(kms, disabled["KeyId"]) != disabled["CurrentKeyMaterialId"]
        assert account_of(kms) == account


def test_concurrent_first_touches_rotate_once(tmp_path: Path) -> None:
    """Many requests reaching keys whose rotation fell due, at once, across both workers:
    each key rotates exactly once, and the keystore holds no material that no key owns."""
    data_dir = tmp_path / "data"
    account = new_account_id()
    with running_server(data_dir) as server:
        kms = account_client(server.endpoint, account)
        keys = [create_key(kms)["KeyId"] for _ in range(6)]
        for key_id in keys:
            kms.enable_key_rotation(KeyId=key_id, RotationPeriodInDays=90)
    offset = str(int(91 * DAY))
    with running_server(data_dir, env={"MOCK_KMS_CLOCK_OFFSET_SECONDS": offset}) as server:
        clients = [account_client(server.endpoint, account) for _ in range(8)]
        calls = [(client, key_id) for key_id in keys for client in clients]
        with ThreadPoolExecutor(max_workers=16) as pool:
            list(pool.map(lambda call: call[0].describe_key(KeyId=call[1]), calls))
        for key_id in keys:
            rotations = clients[0].list_key_rotations(KeyId=key_id)["Rotations"]
            assert [r["RotationType"] for r in rotations] == ["AUTOMATIC"]
        assert keystore_material_ids(data_dir) == metadata_material_ids(data_dir)
