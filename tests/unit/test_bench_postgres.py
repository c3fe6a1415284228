"""The bench's PostgreSQL bookkeeping: statement counts, round trips, which cells run."""

from __future__ import annotations

import pytest

from bench import report, systems, workload
from bench.postgres import StatementCounts, is_background, round_trip_row

LOCK = "SELECT pg_advisory_xact_lock($1)"
SETTINGS = "SELECT name, value FROM service_settings"


def test_counts_subtract_and_add_per_statement() -> None:
    before = StatementCounts({"SELECT 1": 5, LOCK: 2}, commits=10)
    after = StatementCounts({"SELECT 1": 5, LOCK: 7, "UPDATE keys SET state = $1": 5}, 20)
    delta = after.minus(before)
    assert delta.calls == {LOCK: 5, "UPDATE keys SET state = $1": 5}
    assert delta.commits == 10
    assert delta.total == 10
    both = delta.plus(StatementCounts({LOCK: 1}, 1))
    assert both.calls[LOCK] == 6 and both.commits == 11


def test_background_statements_are_the_timers() -> None:
    assert is_background("SELECT value FROM store_generation WHERE id = $1")
    assert is_background(SETTINGS)
    assert not is_background("UPDATE store_generation SET value = value + $1 WHERE id = $2")


def test_round_trips_count_begin_and_commit_per_write_lock() -> None:
    # 100 DisableKey/EnableKey requests: one read outside, one write transaction each
    # (BEGIN, lock, 4 statements, COMMIT); pg_stat_statements saw only some BEGIN/COMMIT.
    delta = StatementCounts(
        {
            "SELECT k.key_id FROM keys k": 200,
            LOCK: 100,
            "UPDATE store_generation SET value = value + $1 WHERE id = $2 RETURNING value": 100,
            "SELECT pg_notify($1, $2)": 100,
            "UPDATE keys SET state = $1": 100,
            "BEGIN": 7,
            "COMMIT": 7,
            SETTINGS: 40,
        },
        commits=300,
    )
    row = round_trip_row("mock-kms-postgres", "DisableKey/EnableKey", 100, 2.0, delta, 0.5)
    assert row["round_trips_per_request"] == pytest.approx(8.0)
    assert row["write_transactions_per_request"] == pytest.approx(1.0)
    assert row["background_per_second"] == pytest.approx(20.0)
    # Held half of 2 s by 100 transactions: 10 ms each.
    assert row["lock_hold_ms"] == pytest.approx(10.0)
    assert "8.00" in report.format_round_trips([row])


def test_round_trips_of_the_hot_path_without_writes() -> None:
    delta = StatementCounts({SETTINGS: 60}, commits=60)
    row = round_trip_row("mock-kms-postgres", "Encrypt-32B", 3000, 2.0, delta)
    assert row["round_trips_per_request"] == 0
    assert row["lock_hold_ms"] is None


def _op(key: str) -> workload.Operation:
    return next(op for op in workload.OPERATIONS if op.key == key)


def test_postgres_systems_and_writes_run_at_the_target_concurrency_only() -> None:
    target = report.TARGET_CONCURRENCY
    assert systems.measures("mock-kms-postgres", _op("Encrypt-32B"), target, target)
    assert not systems.measures("mock-kms-postgres", _op("Encrypt-32B"), 64, target)
    assert not systems.measures("mock-kms-postgres-2hosts", _op("Sign-ECDSA-P256"), target, target)
    assert systems.measures("mock-kms-postgres-2hosts", _op("CreateKey"), target, target)
    assert systems.measures("mock-kms", _op("DisableKey/EnableKey"), target, target)
    assert not systems.measures("mock-kms", _op("CreateKey"), 1, target)
    assert not systems.measures("moto", _op("CreateKey"), target, target)
    assert systems.measures("moto", _op("Encrypt-32B"), 64, target)


def test_write_operations_are_marked() -> None:
    assert _op("CreateKey").writes and _op("DisableKey/EnableKey").writes
    assert _op("DisableKey/EnableKey").then == "EnableKey"
    assert not _op("Decrypt-32B").writes


def test_postgres_system_needs_its_database(tmp_path) -> None:
    with pytest.raises(ValueError, match="needs a database"):
        systems.launch_spec("mock-kms-postgres", 8000, tmp_path)
    shared = systems.SharedStore("postgresql://u:p@127.0.0.1:5432/db", "ab" * 32, tmp_path / "s3")
    first = systems.launch_spec("mock-kms-postgres-2hosts", 8001, tmp_path, shared, 0)
    second = systems.launch_spec("mock-kms-postgres-2hosts", 8002, tmp_path, shared, 1)
    for launch in (first, second):
        assert launch.env["MOCK_KMS_DATABASE_URL"] == shared.database_url
        assert launch.env["MOCK_KMS_ROOT_KEY"] == shared.root_key
        assert launch.env["MOCK_KMS_S3_DIR"] == str(tmp_path / "s3")
    # Each host its own data directory, the same database, root key and S3 directory.
    assert (
        first.command[first.command.index("--data-dir") + 1]
        != second.command[second.command.index("--data-dir") + 1]
    )
