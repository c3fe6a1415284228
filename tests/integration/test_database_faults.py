"""Database faults with two hosts on one PostgreSQL: the database stopped and restarted under
traffic, and a host killed with SIGKILL in the middle of writes.

What must hold: a request that meets the outage fails with a retryable AWS error (KMS
``DependencyTimeoutException``, a 5xx that SDKs retry; with retries off the raw error is
seen), never a dropped connection or a body that is not AWS's; every acknowledged write is
there afterwards; nothing half-written is visible (a key without its tags or its material);
``/healthz`` reports the database; and the hosts recover by themselves within seconds.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from database.postgres_engine import POOL_TIMEOUT_S
from tests.support.cross_host import (
    SECRET,
    Cluster,
    call,
    healthz,
    host_pids,
    kill_host,
    new_account,
    running_cluster,
)
from tests.support.server import RunningServer

pytestmark = pytest.mark.postgres

#: The bound on recovery once PostgreSQL accepts connections again.
RECOVERY_BOUND_S = 10.0
#: No request may take longer than this, outage or not (no hanging request).
REQUEST_BOUND_S = 15.0
RETRYABLE = "DependencyTimeoutException"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two hosts on a PostgreSQL server of this module's own (the tests stop it)."""
    with running_cluster(tmp_path_factory.mktemp("db-faults"), hosts=2) as started:
        yield started


def client(host: RunningServer, account: str) -> Any:
    """A boto3 KMS client for ``host`` that makes exactly one attempt per call (retries off,
    so the raw error of a failed attempt is seen) on kept-alive connections."""
    return boto3.session.Session().client(
        "kms",
        endpoint_url=host.endpoint,
        region_name="us-east-1",
        aws_access_key_id=account,
        aws_secret_access_key=SECRET,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            read_timeout=REQUEST_BOUND_S + 15,
            connect_timeout=5,
        ),
    )


@dataclass
class Ledger:
    """What the traffic threads were told: acknowledged writes, and every failure."""

    keys: dict[str, dict[str, str]] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    aws_errors: list[tuple[str, str, int]] = field(default_factory=list)
    other_errors: list[tuple[str, str]] = field(default_factory=list)
    #: (host port, started, ended, succeeded) of every request.
    requests: list[tuple[int, float, float, bool]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempt(
        self, host: RunningServer, operation: str, method: Callable[..., Any], **params: Any
    ) -> Any:
        """Call ``method(**params)``; record its outcome; its answer, or None if it failed."""
        started = time.monotonic()
        result: Any = None
        try:
            result = method(**params)
        except ClientError as exc:
            response = exc.response
            with self.lock:
                self.aws_errors.append(
                    (
                        operation,
                        str(response["Error"].get("Code")),
                        int(response["ResponseMetadata"]["HTTPStatusCode"]),
                    )
                )
        except Exception as exc:  # a dropped connection, a timeout: all recorded, all fail
            with self.lock:
                self.other_errors.append((operation, repr(exc)[:200]))
        with self.lock:
            self.requests.append((host.port, started, time.monotonic(), result is not None))
        return result


def traffic(
    ledger: Ledger, host: RunningServer, account: str, name: str, stop: threading.Event
) -> None:
    """Writes and crypto in a loop: CreateKey (with tags), TagResource, CreateAlias,
    Encrypt, GenerateDataKey; every acknowledged write goes into ``ledger``."""
    kms = client(host, account)
    mine: list[str] = []
    n = 0
    while not stop.is_set():
        n += 1
        tags = {"writer": name, "n": str(n)}
        created = ledger.attempt(
            host,
            "CreateKey",
            kms.create_key,
            Description=f"{name}-{n}",
            Tags=[{"TagKey": k, "TagValue": v} for k, v in tags.items()],
        )
        if created is not None:
            key = str(created["KeyMetadata"]["KeyId"])
            with ledger.lock:
                ledger.keys[key] = dict(tags)
            mine.append(key)
        if not mine:
            continue
        key = mine[-1]
        extra = {"TagKey": f"extra-{n}", "TagValue": "x"}
        if (
            ledger.attempt(host, "TagResource", kms.tag_resource, KeyId=key, Tags=[extra])
            is not None
        ):
            with ledger.lock:
                ledger.keys[key][extra["TagKey"]] = "x"
        alias = f"alias/{name}-{n}"
        if (
            ledger.attempt(host, "CreateAlias", kms.create_alias, AliasName=alias, TargetKeyId=key)
            is not None
        ):
            with ledger.lock:
                ledger.aliases[alias] = key
        ledger.attempt(host, "Encrypt", kms.encrypt, KeyId=key, Plaintext=b"p")
        ledger.attempt(host, "GenerateDataKey", kms.generate_data_key, KeyId=key, KeySpec="AES_256")


def run_traffic(
    ledger: Ledger, hosts: list[RunningServer], account: str, per_host: int = 2
) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=traffic, args=(ledger, host, account, f"h{h}t{t}", stop), daemon=True
        )
        for h, host in enumerate(hosts)
        for t in range(per_host)
    ]
    for thread in threads:
        thread.start()
    return stop, threads


def check_everything_acknowledged_is_there(
    ledger: Ledger, host: RunningServer, account: str
) -> None:
    """Every acknowledged key, tag and alias is visible through ``host``, and every key it
    lists is whole (its creation tags, usable material)."""
    kms = client(host, account)
    listed = {
        key["KeyId"] for page in kms.get_paginator("list_keys").paginate() for key in page["Keys"]
    }
    assert set(ledger.keys) <= listed, sorted(set(ledger.keys) - listed)[:5]
    for key in listed:
        tags = {
            tag["TagKey"]: tag["TagValue"]
            for tag in kms.list_resource_tags(KeyId=key, Limit=50)["Tags"]
        }
        # Created in one transaction with its tags: a key is there with both, or not at all.
        assert {"writer", "n"} <= set(tags), (key, tags)
        acknowledged = ledger.keys.get(key, {})
        assert acknowledged.items() <= tags.items(), (key, acknowledged, tags)
        blob = kms.encrypt(KeyId=key, Plaintext=b"whole")["CiphertextBlob"]
        assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"whole"
    aliases = {
        alias["AliasName"]: alias.get("TargetKeyId")
        for page in kms.get_paginator("list_aliases").paginate()
        for alias in page["Aliases"]
    }
    for alias, key in ledger.aliases.items():
        assert aliases.get(alias) == key, (alias, key, aliases.get(alias))


def check_only_retryable_errors(ledger: Ledger) -> None:
    assert not ledger.other_errors, ledger.other_errors[:5]
    wrong = [error for error in ledger.aws_errors if error[1] != RETRYABLE or error[2] < 500]
    assert not wrong, wrong[:5]
    slowest = max(ended - started for _, started, ended, _ in ledger.requests)
    assert slowest < REQUEST_BOUND_S, slowest


def recovered_at(ledger: Ledger, host: RunningServer, since: float) -> float | None:
    """When ``host`` recovered: the start of its first request after ``since`` from which
    on every request succeeded (None if its last request failed)."""
    mine = sorted((started, ok) for port, started, _, ok in ledger.requests if port == host.port)
    recovered: float | None = None
    for started, ok in mine:
        if not ok:
            recovered = None
        elif recovered is None and started >= since:
            recovered = started
    return recovered


def wait_for_acknowledged(ledger: Ledger, count: int, timeout: float = 30.0) -> None:
    """Wait until the traffic has ``count`` acknowledged keys (the clients are made and the
    hosts warm: what follows happens mid-traffic, however slow this machine is)."""
    deadline = time.monotonic() + timeout
    while len(ledger.keys) < count:
        assert time.monotonic() < deadline, (ledger.aws_errors[:3], ledger.other_errors[:3])
        time.sleep(0.05)


def wait_for_health(host: RunningServer, want: int, timeout: float) -> tuple[float, dict[str, Any]]:
    """Poll ``/healthz`` until it answers ``want``; seconds taken and the last body."""
    started = time.monotonic()
    while True:
        status, body = healthz(host)
        if status == want:
            return time.monotonic() - started, body
        assert time.monotonic() - started < timeout, (status, body)
        time.sleep(0.1)


def s3_client(host: RunningServer, account: str) -> Any:
    """A boto3 S3 client for ``host``, one attempt per call, path-style addressing."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=host.endpoint,
        region_name="us-east-1",
        aws_access_key_id=account,
        aws_secret_access_key=SECRET,
        config=Config(
            retries={"total_max_attempts": 1, "mode": "standard"},
            s3={"addressing_style": "path"},
            read_timeout=REQUEST_BOUND_S + 15,
        ),
    )


def test_healthz_reports_the_database(cluster: Cluster) -> None:
    hosts = cluster.hosts
    account = new_account()
    bucket = f"outage-{account}"
    s3_client(hosts[0], account).create_bucket(Bucket=bucket)
    for host in hosts:
        status, body = healthz(host)
        assert (status, body["database"]) == (200, {"engine": "postgresql", "ok": True})
    cluster.postgres.stop()
    try:
        for host in hosts:
            _, body = wait_for_health(host, 503, timeout=10)
            assert body["status"] == "unavailable"
            assert body["database"] == {"engine": "postgresql", "ok": False}
            started = time.monotonic()
            answer = call(host, "CreateKey", {}, account)
            assert (answer.status, answer.error) == (500, RETRYABLE), answer
            assert answer.body["message"] == (
                "The service could not reach its database; retry the request."
            )
            assert time.monotonic() - started < REQUEST_BOUND_S
            # The S3 side: its retryable 503, AWS-shaped, with the same message.
            for request in (
                lambda s3: s3.put_object(Bucket=bucket, Key="k", Body=b"data"),
                lambda s3: s3.get_object(Bucket=bucket, Key="k"),
                lambda s3: s3.list_objects_v2(Bucket=bucket),
            ):
                with pytest.raises(ClientError) as refused:
                    request(s3_client(host, account))
                error = refused.value.response
                assert error["ResponseMetadata"]["HTTPStatusCode"] == 503, error
                assert error["Error"]["Code"] == "ServiceUnavailable", error
                assert error["Error"]["Message"] == (
                    "The service could not reach its database; retry the request."
                )
        # A worker that dies during the outage is respawned by gunicorn and must wait for
        # the database, not fail its boot (which would make gunicorn stop the whole host).
        # (A fresh worker's first statement waits out the pool timeout, 5 s: the outage
        # lasts longer, so that the respawned worker's boot meets it.)
        os.kill(host_pids(hosts[0])[-1], signal.SIGKILL)
        time.sleep(POOL_TIMEOUT_S + 2)
        assert hosts[0].process.poll() is None, hosts[0].log()[-2000:]
    finally:
        cluster.postgres.start()
    back = time.monotonic()
    for host in hosts:
        took, body = wait_for_health(host, 200, timeout=RECOVERY_BOUND_S)
        assert body["database"]["ok"] is True
        print(f"host {host.port}: /healthz 200 {took:.2f}s after PostgreSQL was back")
    # Every worker of every host: six CreateKey in a row succeed, within the bound.
    for host in hosts:
        streak = 0
        while streak < 6:
            assert time.monotonic() - back < RECOVERY_BOUND_S, f"host {host.port}"
            streak = streak + 1 if call(host, "CreateKey", {}, account).status == 200 else 0
    # S3 again, through both hosts: what was written before the outage is there.
    for host in hosts:
        s3 = s3_client(host, account)
        s3.put_object(Bucket=bucket, Key=f"after-{host.port}", Body=b"after")
        assert s3.get_object(Bucket=bucket, Key=f"after-{host.port}")["Body"].read() == b"after"


def test_postgres_restarted_mid_traffic(cluster: Cluster) -> None:
    hosts = cluster.hosts[:2]
    account = new_account()
    ledger = Ledger()
    stop, threads = run_traffic(ledger, hosts, account)
    try:
        wait_for_acknowledged(ledger, 8)
        cluster.postgres.stop()
        time.sleep(1.0)  # an outage long enough for requests to meet it
        cluster.postgres.start()
        back = time.monotonic()
        deadline = back + RECOVERY_BOUND_S + 5
        while time.monotonic() < deadline:
            time.sleep(0.5)
            moments = [recovered_at(ledger, host, back) for host in hosts]
            if all(m is not None and time.monotonic() - m > 1.5 for m in moments):
                break
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    check_only_retryable_errors(ledger)
    assert any(error[1] == RETRYABLE for error in ledger.aws_errors), "no request met the outage"
    for host in hosts:
        moment = recovered_at(ledger, host, back)
        assert moment is not None, f"host {host.port} did not recover"
        assert moment - back < RECOVERY_BOUND_S, moment - back
        print(f"host {host.port}: every request succeeded from {moment - back:.2f}s after")
    print(f"{len(ledger.requests)} requests, {len(ledger.aws_errors)} {RETRYABLE}")
    for host in hosts:
        check_everything_acknowledged_is_there(ledger, host, account)


def test_host_killed_mid_write(cluster: Cluster) -> None:
    survivor = cluster.hosts[0]
    victim = cluster.start_host("victim")
    account = new_account()
    ledger = Ledger()
    stop, threads = run_traffic(ledger, [victim], account, per_host=4)
    try:
        wait_for_acknowledged(ledger, 8)
        time.sleep(0.3)
        kill_host(victim)
    finally:
        stop.set()
        for thread in threads:
            thread.join(60)
    # The failures are the requests cut off by the kill; none may be an AWS error.
    assert not [e for e in ledger.aws_errors if e[1] != RETRYABLE], ledger.aws_errors[:5]
    # The survivor writes at once: it never waits long for the dead host's listeners.
    started = time.monotonic()
    assert (
        call(
            survivor,
            "CreateKey",
            {"Tags": [{"TagKey": "writer", "TagValue": "s"}, {"TagKey": "n", "TagValue": "0"}]},
            account,
        ).status
        == 200
    )
    assert time.monotonic() - started < 5.0
    check_everything_acknowledged_is_there(ledger, survivor, account)
