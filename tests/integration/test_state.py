"""State: one SQLite database shared by every worker, durable across restarts and crashes,
consistent under concurrency, and never holding plaintext key material (docs/formats.md)."""

from __future__ import annotations

import base64
import http.client
import os
import secrets
import signal
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tests.support.server import RunningServer, running_server, start_server
from tests.support.wire import (
    Caller,
    KmsClient,
    LogWatch,
    RawResponse,
    child_pids,
    error_code,
    kms_client,
    new_account_id,
    wait_until,
)

THREADS = 16


@pytest.fixture(scope="module")
def state_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A 4-worker server for the consistency and concurrency tests."""
    server = start_server(tmp_path_factory.mktemp("state") / "data", workers=4)
    watch = LogWatch(server.log_path)
    try:
        yield server
        watch.assert_no_unexpected_errors()
    finally:
        server.stop()


def parallel(count: int, task: Callable[[int], Any], threads: int = THREADS) -> list[Any]:
    """Run ``task(i)`` for i in range(count) on ``threads`` threads; results in order."""
    with ThreadPoolExecutor(max_workers=threads) as pool:
        return list(pool.map(task, range(count)))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


# --- cross-worker consistency ------------------------------------------------------------------
def test_disable_is_seen_by_every_worker_at_once(state_server: RunningServer) -> None:
    """Disable through one connection, then 200 requests from 16 threads, each on its own
    connection (so every worker answers some): none succeeds. Re-enable: all succeed."""
    caller = Caller(state_server.port)
    key_id = caller.create_key()
    blob = caller.ok("Encrypt", {"KeyId": key_id, "Plaintext": b64(b"before")})["CiphertextBlob"]

    def encrypt(_: int) -> RawResponse:
        return caller.call("Encrypt", {"KeyId": key_id, "Plaintext": b64(b"x")})

    def decrypt(_: int) -> RawResponse:
        return caller.call("Decrypt", {"CiphertextBlob": blob})

    # Every worker has served this key before it changes state.
    assert {r.status for r in parallel(64, encrypt)} == {200}

    caller.ok("DisableKey", {"KeyId": key_id})
    refused = parallel(150, encrypt) + parallel(50, decrypt)
    assert len(refused) == 200
    assert {r.status for r in refused} == {400}
    assert {r.json()["__type"] for r in refused} == {"DisabledException"}

    caller.ok("EnableKey", {"KeyId": key_id})
    accepted = parallel(150, encrypt) + parallel(50, decrypt)
    assert {r.status for r in accepted} == {200}


def test_alias_retarget_is_seen_by_every_worker_at_once(state_server: RunningServer) -> None:
    caller = Caller(state_server.port)
    first, second = caller.create_key(), caller.create_key()
    caller.ok("CreateAlias", {"AliasName": "alias/moving", "TargetKeyId": first})

    def key_behind_alias(_: int) -> str:
        response = caller.call("Encrypt", {"KeyId": "alias/moving", "Plaintext": b64(b"x")})
        assert response.status == 200, response.body
        return str(response.json()["KeyId"]).rsplit("/", 1)[1]

    assert set(parallel(64, key_behind_alias)) == {first}
    caller.ok("UpdateAlias", {"AliasName": "alias/moving", "TargetKeyId": second})
    assert set(parallel(100, key_behind_alias)) == {second}


def test_scheduled_deletion_is_seen_by_every_worker(state_server: RunningServer) -> None:
    caller = Caller(state_server.port)
    key_id = caller.create_key()
    caller.ok("ScheduleKeyDeletion", {"KeyId": key_id, "PendingWindowInDays": 7})
    answers = parallel(
        64, lambda _: caller.call("Encrypt", {"KeyId": key_id, "Plaintext": b64(b"x")})
    )
    assert {r.json()["__type"] for r in answers} == {"KMSInvalidStateException"}


# --- concurrency -------------------------------------------------------------------------------
def test_parallel_create_key(state_server: RunningServer) -> None:
    client = kms_client(state_server.endpoint)
    created = parallel(50, lambda i: client.create_key(Description=f"parallel {i}"))
    key_ids = [c["KeyMetadata"]["KeyId"] for c in created]
    assert len(set(key_ids)) == 50
    listed = client.list_keys(Limit=1000)
    assert listed["Truncated"] is False
    assert sorted(k["KeyId"] for k in listed["Keys"]) == sorted(key_ids)
    descriptions = {
        client.describe_key(KeyId=key_id)["KeyMetadata"]["Description"] for key_id in key_ids
    }
    assert descriptions == {f"parallel {i}" for i in range(50)}


def test_create_alias_race(state_server: RunningServer) -> None:
    """16 threads create the same alias at the same moment: one wins, 15 are refused."""
    client = kms_client(state_server.endpoint)
    targets = [client.create_key()["KeyMetadata"]["KeyId"] for _ in range(THREADS)]
    barrier = threading.Barrier(THREADS)

    def create(i: int) -> str:
        barrier.wait(timeout=30)
        try:
            client.create_alias(AliasName="alias/contested", TargetKeyId=targets[i])
        except ClientError as exc:
            return error_code(exc)
        return f"won:{targets[i]}"

    outcomes = parallel(THREADS, create)
    winners = [o for o in outcomes if o.startswith("won:")]
    assert len(winners) == 1, outcomes
    assert sorted(o for o in outcomes if not o.startswith("won:")) == ["AlreadyExistsException"] * (
        THREADS - 1
    )
    aliases = [a for a in client.list_aliases()["Aliases"] if a["AliasName"] == "alias/contested"]
    assert len(aliases) == 1
    assert aliases[0]["TargetKeyId"] == winners[0].removeprefix("won:")


def test_parallel_tagging_loses_no_update(state_server: RunningServer) -> None:
    client = kms_client(state_server.endpoint)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    parallel(
        40,
        lambda i: client.tag_resource(KeyId=key_id, Tags=[{"TagKey": f"t{i}", "TagValue": str(i)}]),
    )
    tags = client.list_resource_tags(KeyId=key_id, Limit=50)["Tags"]
    assert {t["TagKey"]: t["TagValue"] for t in tags} == {f"t{i}": str(i) for i in range(40)}


@dataclass
class Traffic:
    """Encrypt/Decrypt loops on several threads, recording every outcome."""

    client: KmsClient
    key_id: str
    sealed: list[tuple[bytes, bytes]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self) -> None:
        while not self.stop.is_set():
            plaintext = secrets.token_bytes(24)
            try:
                blob = self.client.encrypt(
                    KeyId=self.key_id, Plaintext=plaintext, EncryptionContext={"t": "rotation"}
                )["CiphertextBlob"]
                opened = self.client.decrypt(
                    CiphertextBlob=blob, EncryptionContext={"t": "rotation"}
                )["Plaintext"]
                if opened != plaintext:
                    raise AssertionError("decrypted to something else")
            except Exception as exc:  # recorded and asserted on below
                with self.lock:
                    self.errors.append(repr(exc))
                continue
            with self.lock:
                self.sealed.append((blob, plaintext))


def test_rotation_during_traffic(state_server: RunningServer) -> None:
    """RotateKeyOnDemand from 3 threads while 8 threads encrypt and decrypt: no errors,
    exactly 6 rotations, and every ciphertext decrypts afterwards."""
    client = kms_client(state_server.endpoint)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    traffic = Traffic(client, key_id)
    loops = [threading.Thread(target=traffic.run) for _ in range(8)]
    for loop in loops:
        loop.start()
    try:

        def rotate_twice(_: int) -> None:
            for _ in range(2):
                time.sleep(0.15)
                client.rotate_key_on_demand(KeyId=key_id)

        parallel(3, rotate_twice, threads=3)
        time.sleep(0.3)
    finally:
        traffic.stop.set()
        for loop in loops:
            loop.join(timeout=60)
    assert traffic.errors == []
    assert len(traffic.sealed) > 20

    rotations = client.list_key_rotations(KeyId=key_id)["Rotations"]
    assert len(rotations) == 6
    assert {r["RotationType"] for r in rotations} == {"ON_DEMAND"}
    everything = client.list_key_rotations(KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL")
    material_ids = [r["KeyMaterialId"] for r in everything["Rotations"]]
    assert len(set(material_ids)) == 7
    current = client.describe_key(KeyId=key_id)["KeyMetadata"]["CurrentKeyMaterialId"]
    assert current == material_ids[-1]

    used = set()
    for blob, plaintext in traffic.sealed:
        opened = client.decrypt(CiphertextBlob=blob, EncryptionContext={"t": "rotation"})
        assert opened["Plaintext"] == plaintext
        used.add(opened["KeyMaterialId"])
    assert used <= set(material_ids)
    assert len(used) >= 2  # traffic really spanned rotations
    fresh = client.encrypt(KeyId=key_id, Plaintext=b"after")["CiphertextBlob"]
    assert client.decrypt(CiphertextBlob=fresh)["KeyMaterialId"] == current


# --- no plaintext key material on disk ------------------------------------------------------
def _forms(secret: bytes) -> list[bytes]:
    """The ways a secret could be written: raw, hex, base64."""
    return [secret, secret.hex().encode(), base64.b64encode(secret)]


def _unwrapped_materials(data_dir: Path) -> list[bytes]:
    """The software keystore's key material, opened with the root key (the test may; the
    service must never write it out)."""
    root = AESGCM(base64.b64decode((data_dir / "root.key").read_text().strip()))
    with sqlite3.connect(f"file:{data_dir / 'software-keystore.sqlite3'}?mode=ro", uri=True) as db:
        rows = db.execute("SELECT material_id, nonce, wrapped FROM material").fetchall()
    return [
        root.decrypt(nonce, wrapped, material_id.encode()) for material_id, nonce, wrapped in rows
    ]


def _state_files(server: RunningServer) -> dict[str, bytes]:
    """Everything the service writes except the root key file: databases (with their -wal
    and -shm files) and the server log."""
    files = {
        path.name: path.read_bytes()
        for path in server.data_dir.iterdir()
        if path.is_file() and path.name != "root.key"
    }
    files["server.log"] = server.log_path.read_bytes()
    return files


def assert_no_secret_on_disk(server: RunningServer, secrets_to_find: list[bytes]) -> None:
    files = _state_files(server)
    assert any(name.startswith("mock-kms.sqlite3") for name in files)
    assert any(name.startswith("software-keystore.sqlite3") for name in files)
    for name, content in files.items():
        for secret in secrets_to_find:
            for form in _forms(secret):
                assert form not in content, f"{name} holds a secret ({len(secret)} bytes)"


def test_no_plaintext_key_material_on_disk(state_server: RunningServer) -> None:
    client = kms_client(state_server.endpoint)
    key_id = client.create_key()["KeyMetadata"]["KeyId"]
    client.rotate_key_on_demand(KeyId=key_id)
    data_keys = [
        client.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"] for _ in range(20)
    ]
    data_keys += [
        client.generate_data_key(KeyId=key_id, NumberOfBytes=n)["Plaintext"] for n in (16, 64)
    ]
    plaintexts = [secrets.token_bytes(48) for _ in range(10)]
    blobs = [client.encrypt(KeyId=key_id, Plaintext=p)["CiphertextBlob"] for p in plaintexts]
    for blob in blobs:
        client.decrypt(CiphertextBlob=blob)
        client.re_encrypt(CiphertextBlob=blob, DestinationKeyId=key_id)
    randoms = [client.generate_random(NumberOfBytes=32)["Plaintext"] for _ in range(5)]

    materials = _unwrapped_materials(state_server.data_dir)
    assert len(materials) >= 2 and all(len(m) == 32 for m in materials)
    root_key = base64.b64decode((state_server.data_dir / "root.key").read_text().strip())
    assert_no_secret_on_disk(
        state_server, data_keys + plaintexts + randoms + materials + [root_key]
    )


# --- restart and crash -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def lifecycle_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data directory that the restart and crash tests take through several lives."""
    return tmp_path_factory.mktemp("lifecycle") / "data"


@dataclass
class Snapshot:
    """What one account built before a restart, and what must come back."""

    account_id: str
    keys: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    tags: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    rotations: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    rotation_status: dict[str, dict[str, Any]] = field(default_factory=dict)
    policies: dict[str, str] = field(default_factory=dict)
    ciphertexts: list[tuple[bytes, bytes, dict[str, str]]] = field(default_factory=list)


def _populate(client: KmsClient, account_id: str) -> Snapshot:
    snapshot = Snapshot(account_id)
    plain = client.create_key(Description="plain", Tags=[{"TagKey": "env", "TagValue": "dev"}])
    rotated = client.create_key(Description="rotated")
    disabled = client.create_key(Description="disabled")
    doomed = client.create_key(Description="doomed")
    multi = client.create_key(Description="multi", MultiRegion=True)
    ids = [k["KeyMetadata"]["KeyId"] for k in (plain, rotated, disabled, doomed, multi)]
    plain_id, rotated_id, disabled_id, doomed_id, multi_id = ids

    for key_id in (plain_id, rotated_id, multi_id):
        for context in ({}, {"purpose": "restart", "n": key_id[:4]}):
            plaintext = secrets.token_bytes(40)
            blob = client.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext=context)
            snapshot.ciphertexts.append((blob["CiphertextBlob"], plaintext, context))
    client.enable_key_rotation(KeyId=rotated_id, RotationPeriodInDays=120)
    client.rotate_key_on_demand(KeyId=rotated_id)
    client.rotate_key_on_demand(KeyId=rotated_id)
    plaintext = secrets.token_bytes(40)
    blob = client.encrypt(KeyId=rotated_id, Plaintext=plaintext)["CiphertextBlob"]
    snapshot.ciphertexts.append((blob, plaintext, {}))

    client.tag_resource(KeyId=rotated_id, Tags=[{"TagKey": "a", "TagValue": "1"}])
    client.update_key_description(KeyId=plain_id, Description="plain, updated")
    client.create_alias(AliasName="alias/plain", TargetKeyId=plain_id)
    client.create_alias(AliasName="alias/rotated", TargetKeyId=rotated_id)
    client.create_alias(AliasName="alias/moved", TargetKeyId=plain_id)
    client.update_alias(AliasName="alias/moved", TargetKeyId=multi_id)
    client.disable_key(KeyId=disabled_id)
    client.schedule_key_deletion(KeyId=doomed_id, PendingWindowInDays=7)
    policy = client.get_key_policy(KeyId=plain_id, PolicyName="default")["Policy"]
    client.put_key_policy(
        KeyId=plain_id, PolicyName="default", Policy=policy.replace("Enable IAM", "Enable  IAM")
    )
    return _record(client, snapshot, ids)


def _record(client: KmsClient, snapshot: Snapshot, ids: list[str]) -> Snapshot:
    for key_id in ids:
        snapshot.keys[key_id] = client.describe_key(KeyId=key_id)["KeyMetadata"]
        snapshot.tags[key_id] = client.list_resource_tags(KeyId=key_id)["Tags"]
        snapshot.rotations[key_id] = client.list_key_rotations(
            KeyId=key_id, IncludeKeyMaterial="ALL_KEY_MATERIAL"
        )["Rotations"]
        snapshot.rotation_status[key_id] = _without_metadata(
            client.get_key_rotation_status(KeyId=key_id)
        )
        snapshot.policies[key_id] = client.get_key_policy(KeyId=key_id, PolicyName="default")[
            "Policy"
        ]
    snapshot.aliases = {
        a["AliasName"]: a["TargetKeyId"]
        for a in client.list_aliases()["Aliases"]
        if "TargetKeyId" in a and not a["AliasName"].startswith("alias/aws/")
    }
    return snapshot


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _assert_restored(client: KmsClient, before: Snapshot) -> None:
    after = _record(client, Snapshot(before.account_id), list(before.keys))
    assert after.keys == before.keys
    assert after.aliases == before.aliases
    assert after.tags == before.tags
    assert after.rotations == before.rotations
    assert after.rotation_status == before.rotation_status
    assert after.policies == before.policies
    listed = {k["KeyId"] for k in client.list_keys(Limit=1000)["Keys"]}
    assert listed == set(before.keys)
    for blob, plaintext, context in before.ciphertexts:
        assert client.decrypt(CiphertextBlob=blob, EncryptionContext=context)["Plaintext"] == (
            plaintext
        )


def test_restart_keeps_everything(lifecycle_dir: Path) -> None:
    account_id = new_account_id()
    with running_server(lifecycle_dir, workers=2) as server:
        before = _populate(kms_client(server.endpoint, access_key_id=account_id), account_id)
    with running_server(lifecycle_dir, workers=2) as server:
        watch = LogWatch(server.log_path)
        client = kms_client(server.endpoint, access_key_id=account_id)
        _assert_restored(client, before)
        states = {key_id: m["KeyState"] for key_id, m in before.keys.items()}
        assert sorted(states.values()) == [
            "Disabled", "Enabled", "Enabled", "Enabled", "PendingDeletion"
        ]  # fmt: skip
        # The restarted service keeps working on the restored keys.
        rotated_id = client.describe_key(KeyId="alias/rotated")["KeyMetadata"]["KeyId"]
        blob = client.encrypt(KeyId="alias/rotated", Plaintext=b"after restart")
        opened = client.decrypt(CiphertextBlob=blob["CiphertextBlob"])
        assert opened["KeyMaterialId"] == before.keys[rotated_id]["CurrentKeyMaterialId"]
        watch.assert_no_unexpected_errors()


@dataclass
class CrashTraffic:
    """Writes from many threads; only acknowledged (HTTP 200) results are recorded."""

    caller: Caller
    key_id: str
    created_keys: list[str] = field(default_factory=list)
    created_aliases: list[str] = field(default_factory=list)
    sealed: list[tuple[str, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def run(self, worker: int) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            try:
                if n % 3 == 0:
                    response = self.caller.call("CreateKey", {"Description": f"crash {worker}"})
                    if response.status == 200:
                        key_id = response.json()["KeyMetadata"]["KeyId"]
                        alias = f"alias/crash-{worker}-{n}"
                        aliased = self.caller.call(
                            "CreateAlias", {"AliasName": alias, "TargetKeyId": key_id}
                        )
                        with self.lock:
                            self.created_keys.append(key_id)
                            if aliased.status == 200:
                                self.created_aliases.append(alias)
                else:
                    plaintext = secrets.token_bytes(32)
                    response = self.caller.call(
                        "Encrypt", {"KeyId": self.key_id, "Plaintext": b64(plaintext)}
                    )
                    if response.status == 200:
                        with self.lock:
                            self.sealed.append((response.json()["CiphertextBlob"], plaintext))
            except (OSError, http.client.HTTPException):
                time.sleep(0.01)  # the server is gone: keep trying until told to stop


def _kill_by_pid(server: RunningServer) -> None:
    """SIGKILL the master and each of its workers, by PID, with no chance to clean up."""
    workers = child_pids(server.pid)
    assert workers
    os.kill(server.pid, signal.SIGKILL)
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    server.process.wait(timeout=10)

    def gone(pid: int) -> bool:
        status = Path(f"/proc/{pid}/status")
        return not status.exists() or "State:\tZ" in status.read_text()

    assert wait_until(lambda: all(gone(pid) for pid in workers), timeout=10)


def test_sigkill_mid_traffic_restarts_consistent(lifecycle_dir: Path) -> None:
    """Kill -9 the whole service while 12 threads write; every acknowledged write is there
    after the restart, the databases are intact, and the service works on."""
    account_id = new_account_id()
    server = start_server(lifecycle_dir, workers=2)
    try:
        caller = Caller(server.port, account_id)
        key_id = caller.create_key()
        caller.ok("RotateKeyOnDemand", {"KeyId": key_id})
        traffic = CrashTraffic(caller, key_id)
        threads = [threading.Thread(target=traffic.run, args=(i,)) for i in range(12)]
        for thread in threads:
            thread.start()
        assert wait_until(lambda: len(traffic.sealed) > 30 and len(traffic.created_keys) > 10)
        _kill_by_pid(server)
        time.sleep(0.3)
        traffic.stop.set()
        for thread in threads:
            thread.join(timeout=60)
    finally:
        server.stop()

    for name in ("mock-kms.sqlite3", "software-keystore.sqlite3"):
        with sqlite3.connect(lifecycle_dir / name) as db:
            assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    with running_server(lifecycle_dir, workers=2) as server:
        watch = LogWatch(server.log_path)
        client = kms_client(server.endpoint, access_key_id=account_id)
        listed = {k["KeyId"] for k in client.list_keys(Limit=1000)["Keys"]}
        assert set(traffic.created_keys) | {key_id} <= listed
        pages = client.get_paginator("list_aliases").paginate()
        aliases = {a["AliasName"] for page in pages for a in page["Aliases"]}
        assert set(traffic.created_aliases) <= aliases
        for blob, plaintext in traffic.sealed:
            assert client.decrypt(CiphertextBlob=base64.b64decode(blob))["Plaintext"] == plaintext
        # Keys made in the crash window (committed, answer lost) are whole keys too.
        for extra in listed - set(traffic.created_keys) - {key_id}:
            sealed = client.encrypt(KeyId=extra, Plaintext=b"x")["CiphertextBlob"]
            assert client.decrypt(CiphertextBlob=sealed)["Plaintext"] == b"x"
        assert len(client.list_key_rotations(KeyId=key_id)["Rotations"]) == 1
        watch.assert_no_unexpected_errors()
