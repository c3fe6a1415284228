"""The write counters that tell every process when its cached key rows are stale
(database.sqlite_generation), and the store's read cache built on them.

Two ``MetadataStore`` instances on one data directory stand for two gunicorn workers: each
has its own connections and caches and shares only the files, as processes do. Crashes are
real: a child process is SIGKILLed in the middle of a write transaction.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest

from database import sqlite_engine as store_module
from database.sqlite_engine import GENERATION_SUFFIX
from database.sqlite_generation import WriteGeneration
from kms_service.store import KeyRecord, MetadataStore
from kms_service.store.metadata import DATABASE_FILE
from tests.support.records import key_record

ACCOUNT, REGION, KEY_ID = "111122223333", "us-east-1", "1234abcd-12ab-34cd-56ef-1234567890ab"


def _key(state: str = "Enabled") -> KeyRecord:
    return key_record(account_id=ACCOUNT, region=REGION, key_id=KEY_ID, state=state)


def _store_with_key(data_dir: Path) -> MetadataStore:
    store = MetadataStore(data_dir)
    store.initialise()
    with store.write():
        store.insert_key(_key())
        store.add_material(_key(), "aa" * 32, 0.0, None)
    return store


def _disable_with_another_program(data_dir: Path) -> None:
    """Write the database as a program other than mock-kms would: plain sqlite3, no counters."""
    foreign = sqlite3.connect(data_dir / DATABASE_FILE)
    try:
        with foreign:
            foreign.execute("UPDATE keys SET state = 'Disabled'")
    finally:
        foreign.close()


def _state(store: MetadataStore) -> str | None:
    key = store.get_key(ACCOUNT, REGION, KEY_ID)
    return None if key is None else key.state


def test_counters_are_stable_only_between_writes(tmp_path: Path) -> None:
    generation = WriteGeneration(tmp_path / "counters")
    assert generation.stable() == 0
    first = generation.begin()
    assert generation.stable() is None  # a write is in flight
    generation.complete(first)
    assert generation.stable() == 1
    # Completions may arrive out of order (the lock is released before them): the counters
    # are stable only once the last write that began has ended.
    second, third = generation.begin(), generation.begin()
    generation.complete(third)
    generation.complete(second)
    assert generation.stable() == 3


def test_counters_are_shared_through_the_file(tmp_path: Path) -> None:
    one = WriteGeneration(tmp_path / "counters")
    other = WriteGeneration(tmp_path / "counters")
    number = one.begin()
    assert other.stable() is None
    one.complete(number)
    assert other.stable() == number
    assert oct((tmp_path / "counters").stat().st_mode & 0o777) == "0o600"


def test_a_write_in_another_store_is_seen_at_once(data_dir: Path) -> None:
    worker_a = _store_with_key(data_dir)
    worker_b = MetadataStore(data_dir)
    assert _state(worker_b) == "Enabled"
    assert _state(worker_b) == "Enabled"  # now from worker b's cache
    with worker_a.write():
        worker_a.update_key(_key(), state="Disabled")
    assert _state(worker_b) == "Disabled"
    with worker_a.write():
        worker_a.delete_key(_key())
    assert _state(worker_b) is None


def test_nothing_is_cached_while_another_store_is_writing(data_dir: Path) -> None:
    worker_a = _store_with_key(data_dir)
    worker_b = MetadataStore(data_dir)
    assert _state(worker_b) == "Enabled"
    with worker_a.write():
        worker_a.update_key(_key(), state="Disabled")
        # Uncommitted: b still reads the committed row, and must not keep it past the commit.
        assert _state(worker_b) == "Enabled"
    assert _state(worker_b) == "Disabled"


def test_a_rolled_back_write_leaves_the_cache_usable(data_dir: Path) -> None:
    store = _store_with_key(data_dir)
    with pytest.raises(RuntimeError), store.write():
        store.update_key(_key(), state="Disabled")
        raise RuntimeError("abort")
    assert _state(store) == "Enabled"
    generation = WriteGeneration(data_dir / (DATABASE_FILE + GENERATION_SUFFIX))
    assert generation.stable() is not None


def _die_mid_write(data_dir: Path, ready: multiprocessing.synchronize.Event) -> None:
    store = MetadataStore(data_dir)
    with store.write():
        store.update_key(_key(), state="Disabled")
        ready.set()
        time.sleep(60)  # SIGKILLed here, before the commit


def test_a_writer_killed_mid_write_turns_caching_off_until_the_next_write(
    data_dir: Path,
) -> None:
    reader = _store_with_key(data_dir)
    assert _state(reader) == "Enabled"
    context = multiprocessing.get_context("fork")
    ready = context.Event()
    child = context.Process(target=_die_mid_write, args=(data_dir, ready))
    child.start()
    try:
        assert ready.wait(30)
    finally:
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join(30)
    generation = WriteGeneration(data_dir / (DATABASE_FILE + GENERATION_SUFFIX))
    assert generation.stable() is None  # begun, never completed
    assert _state(reader) == "Enabled"  # the killed write was rolled back; read from SQLite
    writer = MetadataStore(data_dir)
    with writer.write():
        writer.update_key(_key(), state="Disabled")
    assert generation.stable() is not None
    assert _state(reader) == "Disabled"


def test_a_foreign_program_writing_the_database_is_seen_within_the_check_interval(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "_FOREIGN_WRITE_CHECK_S", 0.2)
    store = _store_with_key(data_dir)
    assert _state(store) == "Enabled"
    _disable_with_another_program(data_dir)
    deadline = time.monotonic() + 10
    while _state(store) != "Disabled":
        assert time.monotonic() < deadline, "a foreign write was never noticed"
        time.sleep(0.05)


def test_a_reader_that_cannot_open_the_counters_still_reads_correctly(data_dir: Path) -> None:
    _store_with_key(data_dir)
    counters = data_dir / (DATABASE_FILE + GENERATION_SUFFIX)
    # As for a reader without write access to the data directory: the file cannot be opened
    # read-write (a directory in its place makes that fail even for root).
    counters.unlink()
    counters.mkdir()
    reader = MetadataStore(data_dir)
    assert _state(reader) == "Enabled"
    _disable_with_another_program(data_dir)
    assert _state(reader) == "Disabled"  # nothing was cached
