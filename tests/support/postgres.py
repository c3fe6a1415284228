"""A real PostgreSQL server for tests, from Debian's ``postgresql`` package.

:func:`start_postgres` runs ``initdb`` and then the ``postgres`` server itself in a fresh
temporary directory, as an unprivileged user when the tests run as root (PostgreSQL refuses to
run as root; CI runs as root): the dedicated system user ``mock-kms-pg``, created if missing,
else ``nobody``. The server listens on 127.0.0.1 on a free port (its Unix socket stays in the
temporary directory), asks every client for a password (SCRAM), and is started with ``Popen``
so that it is stopped by its own PID: SIGINT (PostgreSQL's "fast" shutdown), then SIGKILL.

Each test server gets its own database from :meth:`PostgresServer.create_database`, owned by a
plain (not superuser) login role, as a real deployment would have.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Where Debian's ``postgresql-NN`` packages put the server binaries.
DEBIAN_PG_ROOT = Path("/usr/lib/postgresql")
#: The system user the server runs as when the tests run as root.
PG_SYSTEM_USER = "mock-kms-pg"
MISSING_REASON = (
    "PostgreSQL is not installed (apt-get install postgresql: initdb and postgres "
    f"under {DEBIAN_PG_ROOT}/*/bin)"
)
#: The superuser the fixture administers the server with (created by initdb).
ADMIN_ROLE = "mock_kms_admin"
#: The login role every test database belongs to (what mock-kms connects as).
APP_ROLE = "mock_kms"
_DATABASE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up, started or stopped; the message holds its log."""


def find_pg_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` holding ``initdb`` and ``postgres``,
    or None. (Debian keeps these off the PATH: /usr/bin has only the client wrappers.)"""
    candidates: list[tuple[int, Path]] = []
    for bin_dir in DEBIAN_PG_ROOT.glob("*/bin"):
        version = bin_dir.parent.name
        if (
            version.isdigit()
            and (bin_dir / "initdb").is_file()
            and (bin_dir / "postgres").is_file()
        ):
            candidates.append((int(version), bin_dir))
    return max(candidates)[1] if candidates else None


def postgres_available() -> bool:
    """Whether a PostgreSQL server can be started here (binaries, and a way to drop root)."""
    if find_pg_bin() is None:
        return False
    return os.geteuid() != 0 or shutil.which("setpriv") is not None


def _cwd(proc_entry: Path) -> str | None:
    """The working directory of the process ``/proc/<pid>``, or None (not a process, gone,
    or not ours to see)."""
    if not proc_entry.name.isdigit():
        return None
    try:
        return os.readlink(proc_entry / "cwd")
    except OSError:
        return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _server_account() -> tuple[int, int] | None:
    """(uid, gid) to run PostgreSQL as: None when not root (run as ourselves), else the
    ``mock-kms-pg`` system user (created if missing), else ``nobody``."""
    if os.geteuid() != 0:
        return None
    for attempt in range(2):
        with contextlib.suppress(KeyError):
            entry = pwd.getpwnam(PG_SYSTEM_USER)
            return entry.pw_uid, entry.pw_gid
        if attempt == 0 and shutil.which("useradd"):
            # Another test process may create it at the same moment: "already exists" is fine,
            # the lookup above is retried once.
            subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    "--user-group",
                    PG_SYSTEM_USER,
                ],
                capture_output=True,
                check=False,
            )
    entry = pwd.getpwnam("nobody")
    return entry.pw_uid, entry.pw_gid


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in ``base_dir`` (data directory, socket directory, log)."""

    bin_dir: Path
    base_dir: Path
    port: int
    admin_password: str
    app_password: str
    account: tuple[int, int] | None
    process: subprocess.Popen[bytes] | None = None
    databases: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    @property
    def log_path(self) -> Path:
        return self.base_dir / "postgres.log"

    @property
    def pid(self) -> int:
        """The postmaster's PID. Raises PostgresError when the server is not running."""
        if self.process is None or self.process.poll() is not None:
            raise PostgresError("PostgreSQL is not running")
        return self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def url(self, database: str, *, user: str = APP_ROLE, password: str | None = None) -> str:
        """``postgresql://user:password@127.0.0.1:PORT/database`` (the app role by default)."""
        if password is None:
            password = self.app_password if user == APP_ROLE else self.admin_password
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    @property
    def admin_url(self) -> str:
        return self.url("postgres", user=ADMIN_ROLE, password=self.admin_password)

    # --- lifecycle ---------------------------------------------------------------------------
    def _command(self, argv: list[str]) -> list[str]:
        """``argv`` run as the server account: ``setpriv`` executes it in place, so a Popen's
        PID is the program's own."""
        if self.account is None:
            return argv
        uid, gid = self.account
        return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", "--", *argv]

    def _env(self) -> dict[str, str]:
        # No PG* variables of the caller's environment, no HOME the server account cannot read.
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C.UTF-8"}

    def start(self, timeout: float = 30.0) -> None:
        """Start the server on :attr:`port` and wait until it accepts a password login.

        Raises PostgresError (with the server log) when it exits or does not answer in time.
        """
        if self.running:
            raise PostgresError("PostgreSQL is already running")
        argv = [
            str(self.bin_dir / "postgres"),
            "-D", str(self.data_dir),
            "-c", "listen_addresses=127.0.0.1",
            "-c", f"port={self.port}",
            "-c", f"unix_socket_directories={self.socket_dir}",
            # Speed: a crash of this test server loses nothing the tests need. Commits still
            # wait for the WAL write (synchronous_commit keeps its default, on).
            "-c", "fsync=off",
            "-c", "full_page_writes=off",
            "-c", "shared_buffers=32MB",
            # Several hosts, each with gunicorn workers, each with a pool and a listener.
            "-c", "max_connections=300",
        ]  # fmt: skip
        log_file = open(self.log_path, "ab")  # noqa: SIM115 - handed to the child process
        try:
            self.process = subprocess.Popen(
                self._command(argv),
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
                env=self._env(),
                cwd=self.base_dir,
            )
        finally:
            log_file.close()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import psycopg

        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self.process is not None
            if self.process.poll() is not None:
                raise PostgresError(
                    f"postgres exited with {self.process.returncode}:\n{self.log()[-4000:]}"
                )
            try:
                with psycopg.connect(self.admin_url, connect_timeout=2) as connection:
                    connection.execute("SELECT 1")
                return
            except psycopg.OperationalError as exc:
                last_error = exc
                time.sleep(0.1)
        self.stop()
        raise PostgresError(
            f"postgres did not accept connections in {timeout}s ({last_error}):\n"
            f"{self.log()[-4000:]}"
        )

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its PID: SIGINT (fast shutdown: clients are disconnected, open
        transactions rolled back), then SIGKILL after ``timeout`` seconds."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def kill(self) -> None:
        """SIGKILL the postmaster (a crash: its backends exit when they notice; the next
        :meth:`start` runs crash recovery)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.kill()
        process.wait(timeout=10)
        self._wait_backends_gone()

    def _wait_backends_gone(self, timeout: float = 10.0) -> None:
        """Wait until no process works in this cluster's data directory (the orphaned backends
        of a killed postmaster exit within a moment; until then they hold its shared memory
        and a new postmaster would refuse to start)."""
        deadline = time.monotonic() + timeout
        data_dir = str(self.data_dir)
        while time.monotonic() < deadline:
            if not any(_cwd(entry) == data_dir for entry in Path("/proc").iterdir()):
                return
            time.sleep(0.05)

    def restart(self, timeout: float = 30.0) -> None:
        """Stop (fast shutdown) and start again on the same port and data directory."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop the server and remove its directory."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    # --- databases ---------------------------------------------------------------------------
    def create_database(self, name: str | None = None) -> str:
        """A fresh, empty database owned by the app role; returns its URL.

        ``name`` defaults to a unique one. Raises ValueError for a name that is not a plain
        lower-case SQL identifier, PostgresError when it already exists.
        """
        import psycopg

        name = name or f"kms_{secrets.token_hex(6)}"
        if not _DATABASE_NAME.fullmatch(name):
            raise ValueError(f"not a plain database name: {name!r}")
        with psycopg.connect(self.admin_url, autocommit=True) as connection:
            try:
                connection.execute(f'CREATE DATABASE "{name}" OWNER "{APP_ROLE}"')
            except psycopg.errors.DuplicateDatabase as exc:
                raise PostgresError(f"database {name} already exists") from exc
        self.databases.append(name)
        return self.url(name)


def start_postgres(timeout: float = 30.0) -> PostgresServer:
    """initdb a new cluster in a fresh temporary directory and start it.

    The directory is made with :func:`tempfile.mkdtemp` (under /tmp, whose parents every user
    can traverse: pytest's own temporary directories are private to root) and handed to the
    server account. Raises PostgresError when PostgreSQL is missing or fails to start.
    """
    bin_dir = find_pg_bin()
    if bin_dir is None:
        raise PostgresError(MISSING_REASON)
    account = _server_account()
    base_dir = Path(tempfile.mkdtemp(prefix="mock-kms-pg-"))
    server = PostgresServer(
        bin_dir=bin_dir,
        base_dir=base_dir,
        port=_free_port(),
        admin_password=secrets.token_urlsafe(18),
        app_password=secrets.token_urlsafe(18),
        account=account,
    )
    try:
        server.socket_dir.mkdir()
        pwfile = base_dir / "admin.pw"
        pwfile.write_text(server.admin_password + "\n")
        pwfile.chmod(0o600)
        if account is not None:
            for path in (base_dir, server.socket_dir, pwfile):
                os.chown(path, *account)
        base_dir.chmod(0o700)
        initdb_argv = [
            str(bin_dir / "initdb"),
            "-D", str(server.data_dir),
            "-U", ADMIN_ROLE,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]  # fmt: skip
        initdb = subprocess.run(
            server._command(initdb_argv),
            env=server._env(),
            cwd=base_dir,
            capture_output=True,
            check=False,
        )
        pwfile.unlink()
        if initdb.returncode != 0:
            raise PostgresError(
                f"initdb failed ({initdb.returncode}):\n"
                f"{initdb.stdout.decode(errors='replace')}{initdb.stderr.decode(errors='replace')}"
            )
        server.start(timeout)
        _create_app_role(server)
    except BaseException:
        server.close()
        raise
    return server


def _create_app_role(server: PostgresServer) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server.admin_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(APP_ROLE), sql.Literal(server.app_password)
            )
        )


@contextlib.contextmanager
def running_postgres(timeout: float = 30.0) -> Iterator[PostgresServer]:
    """Context manager form of :func:`start_postgres` (stopped by PID and removed after)."""
    server = start_postgres(timeout)
    try:
        yield server
    finally:
        server.close()
