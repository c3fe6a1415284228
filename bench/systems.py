"""The systems under test, started as real processes on loopback ports.

* ``mock-kms``: ``mock-kms serve`` with the ``make run`` defaults (only bind and data dir
  changed), ``open`` auth;
* ``mock-kms-sigv4``: the same with ``--auth sigv4`` and a credentials file;
* ``mock-kms-pkcs11``: the same on a SoftHSM token made in a temporary directory;
* ``moto``: ``moto_server``, the Python emulator most users reach for;
* ``ceiling``: :mod:`bench.ceiling` under mock-kms's own gunicorn configuration.

Every system gets the same boto3-shaped requests (SigV4-signed, see :mod:`bench.workload`).
"""

from __future__ import annotations

import http.client
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import procs
from bench.workload import Credentials, SignedClient
from kms_service.settings import Settings

VENV_BIN = Path(sys.executable).parent
BENCH_CREDENTIALS = Credentials("AKIABENCHMARK0000001", "bench-secret-access-key-0000000000000000")
SYSTEMS = ("mock-kms", "mock-kms-sigv4", "mock-kms-pkcs11", "moto", "ceiling")
#: gunicorn-based systems: the master and the ``make run`` default of two workers.
GUNICORN_PROCESSES = 1 + Settings().workers
WORKER_BOOT_GRACE_S = 1.0
LABELS = {
    "mock-kms": "mock-kms (software, auth open)",
    "mock-kms-sigv4": "mock-kms (software, sigv4)",
    "mock-kms-pkcs11": "mock-kms (pkcs11 SoftHSM)",
    "moto": "moto_server",
    "ceiling": "ceiling (bare Flask)",
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

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

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


def launch_spec(name: str, port: int, work_dir: Path) -> Launch:
    """The command line and environment of system ``name`` (files it needs are written).

    Raises ValueError for an unknown name; SoftHSM errors for ``mock-kms-pkcs11``.
    """
    data_dir = work_dir / name
    data_dir.mkdir(parents=True, exist_ok=True)
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


def start_system(name: str, work_dir: Path, timeout: float = 60) -> RunningSystem:
    """Start ``name``, wait until it answers, create the key the workload uses.

    Raises RuntimeError (with the log's tail) if it exits or never becomes ready.
    """
    port = procs.free_port()
    launch = launch_spec(name, port, work_dir)
    log_path = work_dir / f"{name}.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            launch.command,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=dict(launch.env),
            cwd=Path(__file__).resolve().parent.parent,
        )
    client = SignedClient(f"http://127.0.0.1:{port}", BENCH_CREDENTIALS)
    system = RunningSystem(name, process, port, log_path, client)
    try:
        procs.wait_until(
            lambda: process.poll() is None and http_ok(port, launch.ready_path), timeout
        )
    except TimeoutError:
        procs.stop_process(process)
        raise RuntimeError(f"{name} did not become ready:\n{system.log_tail()}") from None
    if process.poll() is not None:
        raise RuntimeError(f"{name} exited with {process.returncode}:\n{system.log_tail()}")
    if launch.processes > 1:
        # /healthz answers as soon as the first worker is up; a run that starts before the
        # others have loaded the app would put every connection on that one worker.
        procs.wait_until(lambda: len(procs.tree_pids(process.pid)) >= launch.processes, timeout)
        time.sleep(WORKER_BOOT_GRACE_S)
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
    return f"{system.name} on {system.endpoint} (pid {system.process.pid}, key {system.key_id})"
