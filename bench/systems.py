"""The systems under test, started as real processes on loopback ports.

* ``mock-kms``: ``mock-kms serve`` with the ``make run`` defaults (only bind and data dir
  changed), ``open`` auth;
* ``mock-kms-sigv4``: the same with ``--auth sigv4`` and a credentials file;
* ``mock-kms-pkcs11``: the same on a SoftHSM token made in a temporary directory;
* ``moto``: ``moto_server``, the Python emulator most users reach for;
* ``ceiling``: :mod:`bench.ceiling` under mock-kms's own gunicorn configuration;
* ``mock-kms-postgres``: ``mock-kms`` with ``--database-url`` on a PostgreSQL the bench starts
  (:mod:`bench.postgres`), and ``mock-kms-postgres-2hosts``: two such hosts (two ``mock-kms
  serve`` processes on their own ports, the same database, root key and ``--s3-dir``), the
  load split evenly between them. Left out, with the reason, where PostgreSQL is missing.

Every system gets the same boto3-shaped requests (SigV4-signed, see :mod:`bench.workload`).
"""

from __future__ import annotations

import http.client
import os
import secrets
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.postgres import BenchPostgres, unavailable_reason
from bench.workload import Credentials, Operation, SignedClient
from kms_service.settings import Settings

VENV_BIN = Path(sys.executable).parent
BENCH_CREDENTIALS = Credentials("AKIABENCHMARK0000001", "bench-secret-access-key-0000000000000000")
SYSTEMS = (
    "mock-kms",
    "mock-kms-sigv4",
    "mock-kms-pkcs11",
    "moto",
    "ceiling",
    "mock-kms-postgres",
    "mock-kms-postgres-2hosts",
)
#: The PostgreSQL systems and their number of hosts.
POSTGRES_HOSTS = {"mock-kms-postgres": 1, "mock-kms-postgres-2hosts": 2}
#: gunicorn-based systems: the master and the ``make run`` default of two workers.
GUNICORN_PROCESSES = 1 + Settings().workers
WORKER_BOOT_GRACE_S = 1.0
LABELS = {
    "mock-kms": "mock-kms (software, auth open)",
    "mock-kms-sigv4": "mock-kms (software, sigv4)",
    "mock-kms-pkcs11": "mock-kms (pkcs11 SoftHSM)",
    "moto": "moto_server",
    "ceiling": "ceiling (bare Flask)",
    "mock-kms-postgres": "mock-kms (software, PostgreSQL store, 1 host)",
    "mock-kms-postgres-2hosts": "mock-kms (software, PostgreSQL store, 2 hosts)",
}


@dataclass(frozen=True)
class Launch:
    """How to start one system."""

    name: str
    command: list[str]
    env: Mapping[str, str]
    ready_path: str  # GET this until it answers 200
    creates_keys: bool = True
    processes: int = 1  # the master and its workers, once all have started


@dataclass
class RunningSystem:
    """A started system with the key the workload uses."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path
    client: SignedClient
    key_id: str = ""
    notes: dict[str, Any] = field(default_factory=dict)
    #: False for systems with fixed keys (the ceiling): the workload creates none there.
    creates_keys: bool = True
    #: The hosts after the first (``process``, ``port``) of a several-host system.
    other_hosts: list[tuple[subprocess.Popen[bytes], int]] = field(default_factory=list)
    #: The database server's PID (PostgreSQL systems): its CPU counts as the system's.
    database_pid: int | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoints(self) -> list[str]:
        """Every host's endpoint (the load generator splits the load between them)."""
        return [self.endpoint] + [f"http://127.0.0.1:{port}" for _, port in self.other_hosts]

    @property
    def host_pids(self) -> list[int]:
        """The PID of every host's master process (its workers are its children)."""
        return [self.process.pid] + [process.pid for process, _ in self.other_hosts]

    @property
    def cpu_pids(self) -> list[int]:
        """The roots of the process trees whose CPU time serves this system's requests: the
        hosts and, for PostgreSQL systems, the database server."""
        return self.host_pids + ([self.database_pid] if self.database_pid is not None else [])

    def stop(self) -> None:
        """Stop every host by its PID (the database server is the bench's, not the system's)."""
        for process, _ in self.other_hosts:
            procs.stop_process(process)
        procs.stop_process(self.process)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def _mock_kms_command(port: int, data_dir: Path) -> list[str]:
    return [
        str(VENV_BIN / "mock-kms"),
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
    ]


def _clean_env(extra: Mapping[str, str]) -> dict[str, str]:
    """The environment minus any ``MOCK_KMS_*`` of the caller, so defaults are defaults."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_KMS_", "PKCS11_"))}
    env.update(extra)
    return env


@dataclass(frozen=True)
class SharedStore:
    """What every host of a PostgreSQL system shares (issue 15's contract): the database,
    the root key and the S3 segment directory."""

    database_url: str
    root_key: str
    s3_dir: Path


def launch_spec(
    name: str, port: int, work_dir: Path, shared: SharedStore | None = None, host: int = 0
) -> Launch:
    """The command line and environment of system ``name`` (files it needs are written);
    for the PostgreSQL systems, of its host number ``host`` on ``shared``.

    Raises ValueError for an unknown name or a PostgreSQL system without ``shared``;
    SoftHSM errors for ``mock-kms-pkcs11``.
    """
    data_dir = work_dir / name
    if name in POSTGRES_HOSTS:
        if shared is None:
            raise ValueError(f"{name} needs a database")
        data_dir = data_dir / f"host{host}"
    data_dir.mkdir(parents=True, exist_ok=True)
    if name in POSTGRES_HOSTS:
        assert shared is not None
        env = {
            "MOCK_KMS_DATABASE_URL": shared.database_url,
            "MOCK_KMS_ROOT_KEY": shared.root_key,
            "MOCK_KMS_S3_DIR": str(shared.s3_dir),
        }
        return Launch(
            name,
            _mock_kms_command(port, data_dir),
            _clean_env(env),
            "/healthz",
            processes=GUNICORN_PROCESSES,
        )
    if name == "mock-kms":
        return Launch(
            name,
            _mock_kms_command(port, data_dir),
            _clean_env({}),
            "/healthz",
            processes=GUNICORN_PROCESSES,
        )
    if name == "mock-kms-sigv4":
        credentials = data_dir / "credentials"
        credentials.write_text(
            "[bench]\n"
            f"aws_access_key_id = {BENCH_CREDENTIALS.access_key_id}\n"
            f"aws_secret_access_key = {BENCH_CREDENTIALS.secret_access_key}\n"
        )
        env = {"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(credentials)}
        return Launch(
            name,
            _mock_kms_command(port, data_dir),
            _clean_env(env),
            "/healthz",
            processes=GUNICORN_PROCESSES,
        )
    if name == "mock-kms-pkcs11":
        from backends.softhsm import init_softhsm_token

        token = init_softhsm_token(data_dir / "hsm")
        command = _mock_kms_command(port, data_dir)
        return Launch(
            name, command, _clean_env(token.env()), "/healthz", processes=GUNICORN_PROCESSES
        )
    if name == "moto":
        command = [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)]
        return Launch(name, command, _clean_env({}), "/moto-api/data.json")
    if name == "ceiling":
        command = [sys.executable, "-m", "bench.ceiling", "--bind", f"127.0.0.1:{port}"]
        return Launch(
            name,
            command,
            _clean_env({}),
            "/healthz",
            creates_keys=False,
            processes=GUNICORN_PROCESSES,
        )
    raise ValueError(f"unknown system {name!r}; known: {', '.join(SYSTEMS)}")


#: The systems the store comparison is about (SQLite, PostgreSQL with one and two hosts).
STORE_SYSTEMS = ("mock-kms", *POSTGRES_HOSTS)
#: What the PostgreSQL systems run: the hot path the issue sets a target for, and the writes.
POSTGRES_OPERATIONS = frozenset(
    {
        "GenerateDataKey",
        "Encrypt-32B",
        "Encrypt-4KiB",
        "Decrypt-32B",
        "Decrypt-4KiB",
        "CreateKey",
        "DisableKey/EnableKey",
    }
)


def measures(name: str, operation: Operation, concurrency: int, target_concurrency: int) -> bool:
    """Whether the bench measures ``operation`` on system ``name`` at ``concurrency``.

    The store comparison (issue 15) is made at the target concurrency only, which keeps
    ``make bench`` short: the PostgreSQL systems run the hot path and the writes there, and
    the write operations run on the store systems only (elsewhere they compare nothing).
    """
    if operation.writes and name not in STORE_SYSTEMS:
        return False
    if operation.writes or name in POSTGRES_HOSTS:
        return concurrency == target_concurrency and (
            name not in POSTGRES_HOSTS or operation.key in POSTGRES_OPERATIONS
        )
    return True


def http_ok(port: int, path: str) -> bool:
    """Whether ``GET path`` answers 200 right now."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        response.read()
        return response.status == 200
    finally:
        connection.close()


def _start_host(
    launch: Launch, port: int, log_path: Path, timeout: float
) -> subprocess.Popen[bytes]:
    """Spawn one host and wait until it answers with all its workers up.

    Raises RuntimeError (with the log's tail) if it exits or never becomes ready.
    """
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            launch.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(launch.env),
            cwd=Path(__file__).resolve().parent.parent,
        )

    def tail() -> str:
        text = log_path.read_text(errors="replace") if log_path.exists() else ""
        return "\n".join(text.splitlines()[-30:])

    try:
        procs.wait_until(
            lambda: process.poll() is None and http_ok(port, launch.ready_path), timeout
        )
    except TimeoutError:
        procs.stop_process(process)
        raise RuntimeError(f"{launch.name} did not become ready:\n{tail()}") from None
    if process.poll() is not None:
        raise RuntimeError(f"{launch.name} exited with {process.returncode}:\n{tail()}")
    if launch.processes > 1:
        # /healthz answers as soon as the first worker is up; a run that starts before the
        # others have loaded the app would put every connection on that one worker.
        procs.wait_until(lambda: len(procs.tree_pids(process.pid)) >= launch.processes, timeout)
    return process


def start_system(
    name: str, work_dir: Path, timeout: float = 60, postgres: BenchPostgres | None = None
) -> RunningSystem:
    """Start ``name`` (every host of it), wait until it answers, create the key the
    workload uses. ``postgres``: the bench's database server, for the PostgreSQL systems.

    Raises RuntimeError (with the log's tail) if it exits or never becomes ready, or when a
    PostgreSQL system cannot run here (the reason in the message).
    """
    shared: SharedStore | None = None
    database_pid: int | None = None
    hosts = POSTGRES_HOSTS.get(name, 1)
    if name in POSTGRES_HOSTS:
        reason = unavailable_reason()
        if reason is not None or postgres is None:
            raise RuntimeError(reason or "no PostgreSQL server given")
        shared = SharedStore(
            postgres.create_database(name), secrets.token_hex(32), work_dir / name / "s3"
        )
        database_pid = postgres.pid
    started: list[tuple[subprocess.Popen[bytes], int]] = []
    try:
        for host in range(hosts):
            port = procs.free_port()
            launch = launch_spec(name, port, work_dir, shared, host)
            suffix = f"-host{host}" if hosts > 1 else ""
            log_path = work_dir / f"{name}{suffix}.log"
            started.append((_start_host(launch, port, log_path, timeout), port))
    except BaseException:
        for process, _ in started:
            procs.stop_process(process)
        raise
    if launch.processes > 1:
        time.sleep(WORKER_BOOT_GRACE_S)
    (process, port), *others = started
    client = SignedClient(f"http://127.0.0.1:{port}", BENCH_CREDENTIALS)
    log_path = work_dir / f"{name}{'-host0' if hosts > 1 else ''}.log"
    system = RunningSystem(
        name, process, port, log_path, client, other_hosts=others, database_pid=database_pid
    )
    if launch.creates_keys:
        # BENCH_KEY_POLICY_FILE: the benchmarked key gets that key policy (access control's
        # cost under a large policy, e.g. bench/policies/twenty-statements.json).
        create: dict[str, str] = {"Description": "bench"}
        policy_file = os.environ.get("BENCH_KEY_POLICY_FILE")
        if policy_file:
            create["Policy"] = Path(policy_file).read_text()
        created = client.call("CreateKey", create)
        system.key_id = str(created["KeyMetadata"]["KeyId"])
    else:
        system.key_id = "00000000-0000-4000-8000-000000000000"
        system.creates_keys = False
    return system


def first_success_seconds(
    command: list[str], env: Mapping[str, str], port: int, timeout: float = 30
) -> float:
    """Cold start: seconds from spawning ``command`` to its first successful KMS request
    (``GenerateRandom``, which needs the store and the backend but no key). The process is
    stopped afterwards. Raises TimeoutError."""
    client = SignedClient(f"http://127.0.0.1:{port}", BENCH_CREDENTIALS, timeout=1)
    started = time.monotonic()
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(env)
    )
    try:
        procs.wait_until(
            lambda: (
                process.poll() is None
                and "Plaintext" in client.call("GenerateRandom", {"NumberOfBytes": 16})
            ),
            timeout,
            interval=0.005,
        )
        return time.monotonic() - started
    finally:
        procs.stop_process(process)


def describe(system: RunningSystem) -> str:
    """One line for the console."""
    where = ", ".join(system.endpoints)
    pids = ", ".join(str(pid) for pid in system.host_pids)
    return f"{system.name} on {where} (pid {pids}, key {system.key_id})"
