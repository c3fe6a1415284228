"""Start and stop a real ``mock-kms serve`` (gunicorn, several workers) for tests.

Only processes this module starts are stopped, and always by their PID.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class RunningServer:
    """A ``mock-kms serve`` process owned by the test that started it."""

    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    env: dict[str, str] = field(default_factory=dict)
    #: "https" when started with --tls/--tls-cert.
    scheme: str = "http"
    #: The PostgreSQL database the server keeps its state in (None: SQLite in ``data_dir``).
    database_url: str | None = None

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def health(self) -> dict[str, object]:
        # The --tls certificate is self-signed; the health probe only checks liveness.
        context = ssl._create_unverified_context() if self.scheme == "https" else None
        with urllib.request.urlopen(
            self.endpoint + "/healthz", timeout=5, context=context
        ) as response:
            return json.loads(response.read())  # type: ignore[no-any-return]

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after 15 s."""
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def start_server(
    data_dir: Path,
    *,
    workers: int = 2,
    env: Mapping[str, str] | None = None,
    extra_args: list[str] | None = None,
    log_path: Path | None = None,
    timeout: float = 30.0,
    port: int | None = None,
) -> RunningServer:
    """Start ``mock-kms serve`` on ``port`` (default: a free loopback port) and wait until
    ``/healthz`` answers 200.

    Raises RuntimeError (with the server's log) if it exits or does not become healthy.
    """
    port = port or free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_path or data_dir.parent / f"server-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    full_env.update(env or {})
    args = [
        sys.executable,
        "-m",
        "kms_service.serving.cli",
        "serve",
        "--bind",
        f"127.0.0.1:{port}",
        "--data-dir",
        str(data_dir),
        "--workers",
        str(workers),
        *(extra_args or []),
    ]
    log_file = open(log_path, "ab")  # noqa: SIM115 - handed to the child process
    process = subprocess.Popen(args, stdout=log_file, stderr=subprocess.STDOUT, env=full_env)
    log_file.close()
    tls = any(arg in ("--tls", "--tls-cert") for arg in extra_args or [])
    server = RunningServer(
        process, port, data_dir, log_path, dict(env or {}), "https" if tls else "http"
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mock-kms exited with {process.returncode}:\n{server.log()}")
        with contextlib.suppress(OSError, urllib.error.URLError):
            if server.health().get("status") == "ok":
                return server
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"mock-kms did not become healthy in {timeout}s:\n{server.log()}")


@contextlib.contextmanager
def running_server(data_dir: Path, **kwargs: object) -> Iterator[RunningServer]:
    """Context manager form of :func:`start_server`."""
    server = start_server(data_dir, **kwargs)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()
