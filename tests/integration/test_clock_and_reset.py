"""The movable clock and state reset (developer endpoints), against real servers; and the
developer endpoints' 404 when they are not enabled."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support.admin import DEV, admin, mock_kms
from tests.support.kms_ops import account_client, expect_error
from tests.support.server import RunningServer, running_server

DAY = 86400.0
KEY = "6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f"


@pytest.fixture(scope="module")
def plain_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("plain") / "data") as server:
        yield server


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/clock", None),
        ("POST", "/clock/advance", {"duration": "400d"}),
        ("POST", "/clock/reset", {}),
        ("POST", "/reset", {}),
        ("GET", "/faults", None),
        ("PUT", "/faults", {"Encrypt": {"ThrottlingException": 1.0}}),
        ("DELETE", "/faults", None),
        ("GET", "", None),
    ],
)
def test_dev_endpoints_are_404_unless_enabled(
    plain_server: RunningServer, method: str, path: str, body: object
) -> None:
    status, _ = admin(plain_server, method, path, body)
    assert status == 404


def test_refused_endpoints_changed_nothing(plain_server: RunningServer) -> None:
    kms = account_client(plain_server.endpoint)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    admin(plain_server, "PUT", "/faults", {"*": {"KMSInternalException": 1.0}})
    admin(plain_server, "POST", "/reset", {})
    for _ in range(20):  # neither a fault rule nor a reset took effect
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"


def test_cli_says_how_to_enable_the_endpoints(plain_server: RunningServer) -> None:
    result = mock_kms("clock", "advance", "1d", "--endpoint", plain_server.endpoint)
    assert result.returncode == 2
    assert "MOCK_KMS_DEV_ENDPOINTS=1" in result.stderr
    result = mock_kms("reset", "--endpoint", "http://127.0.0.1:9")
    assert result.returncode == 2 and "cannot reach mock-kms" in result.stderr


def test_clock_advance_rotates_and_deletes_on_every_worker(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", workers=2, env=DEV) as server:
        kms = account_client(server.endpoint)
        rotating = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.enable_key_rotation(KeyId=rotating, RotationPeriodInDays=365)
        old_blob = kms.encrypt(KeyId=rotating, Plaintext=b"before")["CiphertextBlob"]
        short = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=short, PendingWindowInDays=7)
        long = kms.create_key()["KeyMetadata"]["KeyId"]
        kms.schedule_key_deletion(KeyId=long, PendingWindowInDays=30)

        result = mock_kms("clock", "advance", "8d", "--endpoint", server.endpoint)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["moved_offset_seconds"] == 8 * DAY and answer["deleted_keys"] == 1
        # Every worker now sees the moved clock (20 requests reach both of them).
        for _ in range(20):
            with expect_error("NotFoundException"):
                kms.describe_key(KeyId=short)
            assert kms.describe_key(KeyId=long)["KeyMetadata"]["KeyState"] == "PendingDeletion"
        assert kms.list_key_rotations(KeyId=rotating)["Rotations"] == []

        status, clock = admin(server, "POST", "/clock/advance", {"duration": "400d"})
        assert status == 200 and clock["rotated_keys"] == 1 and clock["deleted_keys"] == 1
        moved = 408 * DAY
        assert clock["moved_offset_seconds"] == moved
        with expect_error("NotFoundException"):
            kms.describe_key(KeyId=long)
        (rotation,) = kms.list_key_rotations(KeyId=rotating)["Rotations"]
        assert rotation["RotationType"] == "AUTOMATIC"
        assert rotation["RotationDate"].timestamp() >= time.time() + moved - 60
        assert kms.decrypt(CiphertextBlob=old_blob)["Plaintext"] == b"before"
        status = kms.get_key_rotation_status(KeyId=rotating)
        assert status["NextRotationDate"].timestamp() >= time.time() + moved + 364 * DAY
        # New keys are created at the moved time, whichever worker answers.
        for _ in range(10):
            created = kms.create_key()["KeyMetadata"]["CreationDate"].timestamp()
            assert abs(created - (time.time() + moved)) < 60

        result = mock_kms("clock", "reset", "--endpoint", server.endpoint)
        assert result.returncode == 0 and json.loads(result.stdout)["offset_seconds"] == 0
        created = kms.create_key()["KeyMetadata"]["CreationDate"]
        assert abs(created.timestamp() - datetime.now(UTC).timestamp()) < 60


def test_start_offset_adds_to_the_moved_clock_and_survives_restart(tmp_path: Path) -> None:
    env = {**DEV, "MOCK_KMS_CLOCK_OFFSET_SECONDS": str(DAY)}
    with running_server(tmp_path / "data", env=env) as server:
        status, clock = admin(server, "POST", "/clock/advance", {"seconds": 2 * DAY})
        assert status == 200 and clock["offset_seconds"] == 3 * DAY
    # The moved offset is kept with the data: a restart does not send keys into the future.
    with running_server(tmp_path / "data", env=DEV) as server:
        status, clock = admin(server, "GET", "/clock")
        assert clock["moved_offset_seconds"] == 2 * DAY and clock["start_offset_seconds"] == 0
        assert "runs 2.0 days ahead" in server.log()


@pytest.mark.parametrize(
    ("body", "words"),
    [({}, "duration"), ({"duration": "soon"}, "not a duration"), ({"seconds": -5}, "forward")],
)
def test_bad_advance_requests_are_400(tmp_path: Path, body: object, words: str) -> None:
    with running_server(tmp_path / "data", env=DEV) as server:
        status, answer = admin(server, "POST", "/clock/advance", body)
        assert status == 400 and words in answer["error"]
        assert admin(server, "GET", "/clock")[1]["offset_seconds"] == 0


def test_reset_wipes_state_and_reapplies_the_seed(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys:\n  - id: {KEY}\n    aliases: [alias/seeded]\n")
    data_dir = tmp_path / "data"
    with running_server(data_dir, env=DEV, extra_args=["--seed", str(seed)]) as server:
        kms = account_client(server.endpoint, "111122223333")
        other = account_client(server.endpoint)
        seeded_material = kms.describe_key(KeyId=KEY)["KeyMetadata"]["CurrentKeyMaterialId"]
        extra = kms.create_key()["KeyMetadata"]["KeyId"]
        other_key = other.create_key()["KeyMetadata"]["KeyId"]
        kms.create_alias(AliasName="alias/extra", TargetKeyId=extra)
        admin(server, "POST", "/clock/advance", {"duration": "3d"})
        admin(server, "PUT", "/faults", {"GenerateRandom": {"latency_ms": 1}})

        result = mock_kms("reset", "--endpoint", server.endpoint)
        assert result.returncode == 0, result.stderr
        answer = json.loads(result.stdout)
        assert answer["deleted_keys"] == 3
        assert any("created key" in change for change in answer["seed"]["changes"])

        assert [k["KeyId"] for k in kms.list_keys()["Keys"]] == [KEY]
        assert other.list_keys()["Keys"] == []
        with expect_error("NotFoundException"):
            other.describe_key(KeyId=other_key)
        assert [a["AliasName"] for a in kms.list_aliases()["Aliases"]] == ["alias/seeded"]
        # The seeded key is back with fresh material: no earlier ciphertext can be replayed.
        assert kms.describe_key(KeyId=KEY)["KeyMetadata"]["CurrentKeyMaterialId"] != (
            seeded_material
        )
        assert admin(server, "GET", "/clock")[1]["offset_seconds"] == 0
        assert admin(server, "GET", "/faults")[1] == {}
