"""Helpers for the cross-host and database-fault tests: a PostgreSQL server and mock-kms hosts
sharing it, requests on fresh connections, and threads that hammer a host while recording
when each request started and what it saw.

Every process started here is stopped by its PID.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.conftest import require_in_ci
from tests.support.postgres import (
    MISSING_REASON,
    PostgresServer,
    postgres_available,
    start_postgres,
)
from tests.support.server import RunningServer, start_server
from tests.support.wire import CONTENT_TYPE, signed_headers

SECRET = "mock-kms-test-secret"


def postgres_or_skip() -> PostgresServer:
    """A fresh PostgreSQL server (skips locally without PostgreSQL, fails when CI is set)."""
    if not postgres_available():
        require_in_ci(MISSING_REASON)
    return start_postgres()


@dataclass
class Cluster:
    """mock-kms hosts on one PostgreSQL database, with one root key and one S3 directory."""

    postgres: PostgresServer
    database_url: str
    base_dir: Path
    root_key: str
    hosts: list[RunningServer] = field(default_factory=list)

    def start_host(self, name: str, *, workers: int = 2) -> RunningServer:
        """Start one more host (its own data directory) and return it once healthy."""
        host = start_server(
            self.base_dir / name,
            workers=workers,
            env={"MOCK_KMS_ROOT_KEY": self.root_key},
            extra_args=[
                "--database-url",
                self.database_url,
                "--s3-dir",
                str(self.base_dir / "s3"),
                "--dev-endpoints",
            ],
        )
        self.hosts.append(host)
        return host

    def stop(self) -> None:
        for host in self.hosts:
            host.stop()


@contextmanager
def running_cluster(
    base_dir: Path, hosts: int = 2, postgres: PostgresServer | None = None
) -> Iterator[Cluster]:
    """``hosts`` mock-kms hosts on one fresh database of ``postgres`` (default: a PostgreSQL
    server of their own, which the test may stop and restart, removed afterwards)."""
    server = postgres or postgres_or_skip()
    cluster = Cluster(server, server.create_database(), base_dir, secrets.token_hex(32))
    try:
        for index in range(hosts):
            cluster.start_host(f"host{index}")
        yield cluster
    finally:
        cluster.stop()
        if postgres is None:
            server.close()


def new_account() -> str:
    """A random 12-digit account id (the caller's account in open auth mode)."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


@dataclass(frozen=True)
class Answer:
    """One KMS answer: HTTP status and JSON body (``{}`` when the body is not JSON)."""

    status: int
    body: dict[str, Any]

    @property
    def error(self) -> str | None:
        """The AWS error name, or None for a success."""
        if self.status == 200:
            return None
        return str(self.body.get("__type", f"HTTP {self.status}")).rsplit("#", 1)[-1]


def call(
    host: RunningServer, operation: str, params: dict[str, Any], account: str, timeout: float = 30
) -> Answer:
    """One signed KMS request to ``host`` on a fresh TCP connection (no pooled connection,
    no client state carried over from an earlier request)."""
    body = json.dumps(params).encode()
    headers = signed_headers(
        host.endpoint, operation, body, access_key_id=account, secret_access_key=SECRET
    )
    headers["Content-Type"] = CONTENT_TYPE
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=timeout)
    try:
        connection.request("POST", "/", body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        parsed = {"__type": f"not JSON: {data[:80]!r}"}
    return Answer(response.status, parsed if isinstance(parsed, dict) else {})


def admin(host: RunningServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """A developer endpoint (``/_mock-kms/...``) of ``host``; the JSON answer. Raises
    AssertionError unless it answers 200."""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=30)
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload else {}
        connection.request(method, "/_mock-kms" + path, body=payload, headers=headers)
        response = connection.getresponse()
        data = response.read()
    finally:
        connection.close()
    assert response.status == 200, (path, response.status, data[:300])
    return json.loads(data)


def healthz(host: RunningServer) -> tuple[int, dict[str, Any]]:
    """``GET /healthz`` of ``host`` on a fresh connection: status and JSON body."""
    connection = http.client.HTTPConnection("127.0.0.1", host.port, timeout=10)
    try:
        connection.request("GET", "/healthz")
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


@dataclass(frozen=True)
class Probe:
    """One request of a :class:`Hammer`: when it was sent, when answered, what it saw."""

    started: float
    ended: float
    outcome: str


class Hammer:
    """``threads`` threads calling ``probe`` in a loop until stopped, recording each call.

    ``probe`` returns a short outcome label ("old", "new", or an error name). Times are
    ``time.monotonic()`` of this process, comparable with the caller's.
    """

    def __init__(self, probe: Callable[[], str], threads: int = 6) -> None:
        self._probe = probe
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.probes: list[Probe] = []
        self.failures: list[BaseException] = []
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def _run(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            try:
                outcome = self._probe()
            except Exception as exc:  # reported by stop(): the test fails with it
                with self._lock:
                    self.failures.append(exc)
                return
            with self._lock:
                self.probes.append(Probe(started, time.monotonic(), outcome))

    def __enter__(self) -> Hammer:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_for(self, outcome: str, count: int = 5, timeout: float = 10.0) -> None:
        """Wait until ``count`` probes saw ``outcome`` (the caches are warm with it)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                seen = sum(1 for probe in self.probes if probe.outcome == outcome)
                if seen >= count or self.failures:
                    return
            time.sleep(0.02)
        raise AssertionError(f"no {outcome!r} answers in {timeout}s: {self.outcomes()}")

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)
        if self.failures:
            raise AssertionError(f"a probe raised: {self.failures[0]!r}") from self.failures[0]

    def outcomes(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        with self._lock:
            for probe in self.probes:
                counts[probe.outcome] = counts.get(probe.outcome, 0) + 1
        return counts

    def started_after(self, moment: float) -> list[Probe]:
        with self._lock:
            return [probe for probe in self.probes if probe.started > moment]


def host_pids(host: RunningServer) -> list[int]:
    """The gunicorn master of ``host`` and its workers (children), by PID."""
    pids = [host.pid]
    task_dir = Path(f"/proc/{host.pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        children = (task / "children").read_text().split()
        pids.extend(int(pid) for pid in children)
    return pids


def kill_host(host: RunningServer) -> None:
    """SIGKILL ``host``'s workers and master at once (a crashed machine: nothing is flushed,
    no connection is closed politely), by PID."""
    pids = host_pids(host)
    for pid in reversed(pids):
        with suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    host.process.wait(timeout=10)
