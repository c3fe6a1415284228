"""Seeding against real servers: reconciliation is idempotent and updates what differs,
local-kms's documented seed files load, export then seed reproduces the state (and old
ciphertexts decrypt), and errors name the line and the field."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tests.support.admin import mock_kms
from tests.support.kms_ops import KmsClient, account_client, new_account_id
from tests.support.server import running_server

FIXTURES = Path(__file__).parent.parent / "fixtures" / "localkms"
ACCOUNT = "111122223333"
ORDERS = "6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f"
ARCHIVE = "2b9a3c4d-1111-4222-8333-444455556666"
LEAVING = "3c0d4e5f-1111-4222-8333-444455556666"
HEX1 = "5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9"
HEX2 = "614e645267556b58703273357638792f423f4528472b4b6250655368566d5971"
HEX3 = "34743777217a25432a46294a404e635266556a586e3272357538782f413f4428"

SEED = f"""version: 1
keys:
  - id: {ORDERS}
    description: orders service
    rotation: {{enabled: true, period_days: 180, next_rotation_date: 2099-01-01T00:00:00Z}}
    material:
      - key: {HEX1}
        created: 2023-01-01T00:00:00Z
      - key: {HEX2}
        created: 2024-01-01T00:00:00Z
        rotation_type: ON_DEMAND
    aliases: [alias/orders]
    tags: {{team: payments, tier: gold}}
    policy:
      Version: "2012-10-17"
      Statement:
        - Sid: all
          Effect: Allow
          Principal: {{AWS: "arn:aws:iam::{ACCOUNT}:root"}}
          Action: "kms:*"
          Resource: "*"
  - id: {ARCHIVE}
    account: "222233334444"
    region: eu-west-1
    state: Disabled
    description: archive
  - id: {LEAVING}
    state: PendingDeletion
    deletion_date: 2099-06-01T00:00:00Z
aliases:
  - {{name: alias/orders-current, target: {ORDERS}}}
"""


def snapshot(kms: KmsClient) -> dict[str, Any]:
    """Everything the API shows about one account's keys (alias dates aside: a seed cannot
    carry them)."""
    state: dict[str, Any] = {}
    for entry in kms.list_keys()["Keys"]:
        key_id = entry["KeyId"]
        metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
        rotation = kms.get_key_rotation_status(KeyId=key_id)
        rotation.pop("ResponseMetadata")
        item: dict[str, Any] = {"metadata": metadata, "rotation": rotation}
        if metadata["KeyState"] != "PendingImport":
            item["rotations"] = kms.list_key_rotations(
                KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL"
            )["Rotations"]
        item["tags"] = kms.list_resource_tags(KeyId=key_id)["Tags"]
        item["policy"] = kms.get_key_policy(KeyId=key_id, PolicyName="default")["Policy"]
        state[key_id] = item
    state["aliases"] = sorted(
        (a["AliasName"], a.get("TargetKeyId")) for a in kms.list_aliases()["Aliases"]
    )
    return state


def database_rows(data_dir: Path) -> dict[str, list[tuple[Any, ...]]]:
    connection = sqlite3.connect(data_dir / "mock-kms.sqlite3")
    try:
        return {
            table: sorted(connection.execute(f"SELECT * FROM {table}").fetchall())
            for table in ("keys", "key_materials", "aliases", "tags")
        }
    finally:
        connection.close()


def test_seed_applied_twice_is_a_no_op_the_second_time(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    data_dir = tmp_path / "data"
    with running_server(data_dir, extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        first = snapshot(kms)
        blob = kms.encrypt(KeyId="alias/orders", Plaintext=b"seeded")["CiphertextBlob"]
        archive = account_client(server.endpoint, "222233334444", "eu-west-1")
        assert archive.describe_key(KeyId=ARCHIVE)["KeyMetadata"]["KeyState"] == "Disabled"
        assert "created key" in server.log()
    orders = first[ORDERS]
    assert orders["metadata"]["Description"] == "orders service"
    assert orders["rotation"]["RotationPeriodInDays"] == 180
    assert [r.get("RotationType") for r in orders["rotations"]] == [None, "ON_DEMAND"]
    assert orders["rotations"][1]["RotationDate"].year == 2024
    assert orders["tags"] == [
        {"TagKey": "team", "TagValue": "payments"},
        {"TagKey": "tier", "TagValue": "gold"},
    ]
    assert first[LEAVING]["metadata"]["KeyState"] == "PendingDeletion"
    assert first[LEAVING]["metadata"]["DeletionDate"].year == 2099
    assert ("alias/orders-current", ORDERS) in first["aliases"]
    rows = database_rows(data_dir)

    with running_server(data_dir, extra_args=["--seed", str(seed)]) as server:
        assert "the store already matches, nothing to do" in server.log()
        assert "created" not in server.log() and "updated" not in server.log()
        assert database_rows(data_dir) == rows
        kms = account_client(server.endpoint, ACCOUNT)
        assert snapshot(kms) == first
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"seeded"


def test_seed_updates_what_differs_and_never_destroys_the_rest(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(SEED)
    data_dir = tmp_path / "data"
    with running_server(data_dir, extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        old_blob = kms.encrypt(KeyId=ORDERS, Plaintext=b"v2")["CiphertextBlob"]
        own = kms.create_key(Description="made by a test")["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/own", TargetKeyId=own)
        kms.tag_resource(KeyId=ORDERS, Tags=[{"TagKey": "extra", "TagValue": "kept"}])
        kms.disable_key(KeyId=ORDERS)
    changed = (
        SEED.replace(
            "description: orders service", "description: orders, renamed\n    state: Enabled"
        )
        .replace("tier: gold", "tier: platinum")
        .replace(
            "        rotation_type: ON_DEMAND\n",
            "        rotation_type: ON_DEMAND\n"
            f"      - key: {HEX3}\n"
            "        created: 2025-01-01T00:00:00Z\n",
        )
        .replace("aliases: [alias/orders]", "aliases: [alias/orders, alias/orders-v3]")
    )
    seed.write_text(changed)
    with running_server(data_dir, extra_args=["--seed", str(seed)]) as server:
        assert f"updated key arn:aws:kms:us-east-1:{ACCOUNT}:key/{ORDERS}" in server.log()
        kms = account_client(server.endpoint, ACCOUNT)
        metadata = kms.describe_key(KeyId=ORDERS)["KeyMetadata"]
        assert metadata["Description"] == "orders, renamed"
        assert metadata["KeyState"] == "Enabled"
        rotations = kms.list_key_rotations(KeyId=ORDERS, IncludeKeyMaterial="ALL_KEY_MATERIAL")[
            "Rotations"
        ]
        assert len(rotations) == 3 and rotations[-1]["KeyMaterialState"] == "CURRENT"
        assert metadata["CurrentKeyMaterialId"] == rotations[-1]["KeyMaterialId"]
        tags = {t["TagKey"]: t["TagValue"] for t in kms.list_resource_tags(KeyId=ORDERS)["Tags"]}
        assert tags == {"team": "payments", "tier": "platinum", "extra": "kept"}
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        assert aliases["alias/orders-v3"] == ORDERS and aliases["alias/own"] == own
        assert kms.describe_key(KeyId=own)["KeyMetadata"]["Description"] == "made by a test"
        assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"v2"


@pytest.mark.parametrize(
    "fixture", ["README-simple.yaml", "README-rotated.yaml", "README-optional-fields.yaml"]
)
def test_local_kms_documented_seed_files_load(tmp_path: Path, fixture: str) -> None:
    seed = FIXTURES / fixture
    with running_server(tmp_path / "data", extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        keys = {k["KeyId"] for k in kms.list_keys()["Keys"]}
        aliases = {a["AliasName"]: a.get("TargetKeyId") for a in kms.list_aliases()["Aliases"]}
        log = server.log()
        if fixture == "README-simple.yaml":
            ecc = "800d5768-3fd7-4edd-a4b8-4c81c3e4c147"
            assert keys == {"bc436485-5092-42b8-92a3-0aa8b93536dc", ecc}
            assert aliases == {"alias/testing": "bc436485-5092-42b8-92a3-0aa8b93536dc"}
            assert kms.describe_key(KeyId=ecc)["KeyMetadata"]["KeySpec"] == "ECC_NIST_P256"
            assert "Asymmetric Ecc key 0xf39fd6e51aad88f6f4ce6ab8827279cfffb92266 skipped" in log
            assert "README-simple.yaml:11: Keys.Asymmetric.Ecc[0]" in log  # the skipped entry
        elif fixture == "README-rotated.yaml":
            assert keys == {
                "bc436485-5092-42b8-92a3-0aa8b93536dc",
                "49c5492b-b1bc-42a8-9a5c-b2015e810c1c",
            }
            assert set(aliases) == {"alias/dev", "alias/test"}
            rotations = kms.list_key_rotations(KeyId="bc436485-5092-42b8-92a3-0aa8b93536dc")
            assert len(rotations["Rotations"]) == 1  # two backing keys: one past rotation
        else:
            rotating = "bc436485-5092-42b8-92a3-0aa8b93536dc"
            metadata = kms.describe_key(KeyId=rotating)["KeyMetadata"]
            assert metadata["Description"] == "Your key description"
            # NextKeyRotation (2019) has passed: the key rotated on first use, as in local-kms.
            assert len(kms.list_key_rotations(KeyId=rotating)["Rotations"]) == 1
            assert kms.get_key_rotation_status(KeyId=rotating)["KeyRotationEnabled"] is True
            imported = kms.describe_key(KeyId="5ef77041-d1e6-4af1-9a41-e49a4b45efb6")
            assert imported["KeyMetadata"]["Origin"] == "EXTERNAL"
            assert imported["KeyMetadata"]["KeyState"] == "Enabled"
            pending = kms.describe_key(KeyId="5d05267f-bb87-4d0b-8594-295a4371d414")
            assert pending["KeyMetadata"]["KeyState"] == "PendingImport"
        for key_id in keys:
            metadata = kms.describe_key(KeyId=key_id)["KeyMetadata"]
            if metadata["KeyState"] == "Enabled" and metadata["KeySpec"] == "SYMMETRIC_DEFAULT":
                blob = kms.encrypt(KeyId=key_id, Plaintext=b"x")["CiphertextBlob"]
                assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"x"


def test_same_seed_gives_portable_ciphertexts(tmp_path: Path) -> None:
    seed = FIXTURES / "README-rotated.yaml"
    key_id = "49c5492b-b1bc-42a8-9a5c-b2015e810c1c"
    with running_server(tmp_path / "one", extra_args=["--seed", str(seed)]) as server:
        blob = account_client(server.endpoint, ACCOUNT).encrypt(KeyId=key_id, Plaintext=b"p")[
            "CiphertextBlob"
        ]
    with running_server(tmp_path / "two", extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"p"


def test_export_then_seed_reproduces_state_and_old_ciphertexts_decrypt(tmp_path: Path) -> None:
    account = new_account_id()
    blobs: list[tuple[bytes, bytes]] = []
    with running_server(tmp_path / "source") as server:
        kms = account_client(server.endpoint, account)
        main = kms.create_key(Description="main", Tags=[{"TagKey": "env", "TagValue": "dev"}])[
            "KeyMetadata"
        ]["KeyId"]
        kms.create_alias(AliasName="alias/main", TargetKeyId=main)
        kms.enable_key_rotation(KeyId=main, RotationPeriodInDays=120)
        for round_ in range(3):
            plaintext = f"round {round_}".encode()
            blobs.append(
                (kms.encrypt(KeyId=main, Plaintext=plaintext)["CiphertextBlob"], plaintext)
            )
            kms.rotate_key_on_demand(KeyId=main)
        mrk = kms.create_key(MultiRegion=True, Description="multi")["KeyMetadata"]["KeyId"]
        blobs.append((kms.encrypt(KeyId=mrk, Plaintext=b"mrk")["CiphertextBlob"], b"mrk"))
        disabled = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.disable_key(KeyId=disabled)
        leaving = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=leaving, PendingWindowInDays=9)
        kms.put_key_policy(
            KeyId=disabled,
            PolicyName="default",
            Policy='{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            '"Principal": {"AWS": "' + account + '"}, "Action": "kms:*", "Resource": "*"}]}',
        )
        kms.encrypt(KeyId="alias/aws/s3", Plaintext=b"managed")  # AWS managed: not exported
        before = snapshot(kms)

    without = mock_kms("export", "--data-dir", str(tmp_path / "source"))
    assert without.returncode == 0, without.stderr
    assert "key:" not in without.stdout and main in without.stdout
    exported = tmp_path / "export.yaml"
    result = mock_kms(
        "export", "--data-dir", str(tmp_path / "source"), "--include-material", "-o", str(exported)
    )
    assert result.returncode == 0, result.stderr
    assert exported.stat().st_mode & 0o777 == 0o600
    assert "KEY MATERIAL" in exported.read_text()

    managed = [
        k for k, v in before.items() if k != "aliases" and v["metadata"]["KeyManager"] == "AWS"
    ]
    assert len(managed) == 1
    with running_server(tmp_path / "fresh", extra_args=["--seed", str(exported)]) as server:
        kms = account_client(server.endpoint, account)
        after = snapshot(kms)
        for blob, plaintext in blobs:
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext
        with pytest.raises(ClientError):  # the AWS managed key was not carried over
            kms.describe_key(KeyId=managed[0])
    del before[managed[0]]
    before["aliases"] = [a for a in before["aliases"] if not a[0].startswith("alias/aws/")]
    assert _rounded(after) == _rounded(before)


def _rounded(value: Any) -> Any:
    """Timestamps to the millisecond (the seed file keeps microseconds; floats may differ in
    the last bit)."""
    import datetime

    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_rounded(v) for v in value)
    if isinstance(value, datetime.datetime):
        return round(value.timestamp(), 3)
    return value


def test_seed_errors_stop_the_start_naming_line_and_field(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(
        f"keys:\n  - id: {ORDERS}\n    rotation:\n      enabled: yes\n      period_days: 10\n"
    )
    result = mock_kms("serve", "--data-dir", str(tmp_path / "data"), "--seed", str(seed))
    assert result.returncode == 2
    assert f"{seed}:5: keys[0].rotation.period_days: must be between 90 and 2560" in result.stderr
    seed.write_text(f"aliases:\n  - name: alias/x\n    target: {ORDERS}\n")
    result = mock_kms("serve", "--data-dir", str(tmp_path / "data"), "--seed", str(seed))
    assert result.returncode == 2
    assert f"{seed}:2: aliases[0].target: target key {ORDERS} does not exist" in result.stderr


def test_seed_from_environment_variable(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys:\n  - id: {ORDERS}\n")
    with running_server(tmp_path / "data", env={"MOCK_KMS_SEED": str(seed)}) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        assert kms.describe_key(KeyId=ORDERS)["KeyMetadata"]["KeyState"] == "Enabled"


@pytest.mark.hsm
def test_seed_on_the_pkcs11_backend(tmp_path: Path) -> None:
    """Seeded keys without material are generated inside the token (in a forked child of the
    master, which never loads the module); material in the seed goes to the software store."""
    from tests.conftest import backend_env

    env = backend_env("pkcs11", tmp_path / "hsm")
    seed = tmp_path / "seed.yaml"
    software_key = "bc436485-5092-42b8-92a3-0aa8b93536dc"
    seed.write_text(
        f"keys:\n  - id: {ORDERS}\n    aliases: [alias/in-hsm]\n"
        f"  - id: {software_key}\n    material:\n      - key: {HEX1}\n"
    )
    data_dir = tmp_path / "data"
    with running_server(data_dir, env=env, extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, ACCOUNT)
        in_hsm = kms.describe_key(KeyId="alias/in-hsm")["KeyMetadata"]
        assert in_hsm["KeyId"] == ORDERS and in_hsm.get("CustomKeyStoreId")
        assert "CustomKeyStoreId" not in kms.describe_key(KeyId=software_key)["KeyMetadata"]
        for key_id in (ORDERS, software_key):
            blob = kms.encrypt(KeyId=key_id, Plaintext=b"hsm")["CiphertextBlob"]
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"hsm"
        master = server.pid
        maps = Path(f"/proc/{master}/maps").read_text()
        assert "softhsm" not in maps  # the gunicorn master never loaded the PKCS#11 module
    with running_server(data_dir, env=env, extra_args=["--seed", str(seed)]) as server:
        assert "nothing to do" in server.log()
    seed.write_text(f"keys:\n  - id: {ORDERS}\n    backend: software\n")
    result = mock_kms("serve", "--data-dir", str(data_dir), "--seed", str(seed))
    assert result.returncode == 2 and "keys cannot move" in result.stderr
