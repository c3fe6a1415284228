"""The tests' PostgreSQL (tests/support/postgres.py): a real server from Debian's package,
run unprivileged, reached with psycopg (the driver mock-kms uses), restarted, killed and
stopped by its PID."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import require_in_ci
from tests.support.postgres import (
    APP_ROLE,
    MISSING_REASON,
    PostgresError,
    PostgresServer,
    postgres_available,
    start_postgres,
)

pytestmark = pytest.mark.postgres

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A server of this module's own: these tests stop and restart it."""
    if not postgres_available():
        require_in_ci(MISSING_REASON)
    server = start_postgres()
    try:
        yield server
    finally:
        server.close()
    assert not server.base_dir.exists()


def _uid_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid line for {pid}")


def _refuses(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except OSError:
        return True
    return False


def test_session_server_gives_fresh_databases(postgres: PostgresServer) -> None:
    first, second = postgres.create_database(), postgres.create_database()
    assert first != second
    assert first.startswith(f"postgresql://{APP_ROLE}:")
    assert f"@127.0.0.1:{postgres.port}/" in first
    with psycopg.connect(first) as connection:
        connection.execute("CREATE TABLE t (x int)")
    with psycopg.connect(second) as connection:
        tables = connection.execute(
            "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
        ).fetchone()
        assert tables == (0,)


def test_runs_unprivileged_with_password_logins_on_loopback(own_postgres: PostgresServer) -> None:
    assert Path(f"/proc/{own_postgres.pid}/exe").resolve().name == "postgres"
    if os.geteuid() == 0:
        assert _uid_of(own_postgres.pid) != 0
    url = own_postgres.create_database()
    with psycopg.connect(url) as connection:
        user, superuser = connection.execute(
            "SELECT current_user, rolsuper FROM pg_roles WHERE rolname = current_user"
        ).fetchone()
        assert (user, superuser) == (APP_ROLE, False)
        settings = dict(
            connection.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN "
                "('listen_addresses', 'fsync', 'synchronous_commit', 'password_encryption')"
            ).fetchall()
        )
    assert settings == {
        "listen_addresses": "127.0.0.1",
        "fsync": "off",
        "synchronous_commit": "on",
        "password_encryption": "scram-sha-256",
    }
    wrong = url.replace(f"{APP_ROLE}:{own_postgres.app_password}@", f"{APP_ROLE}:wrong@")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(wrong, connect_timeout=5)


def test_database_names_are_checked(own_postgres: PostgresServer) -> None:
    own_postgres.create_database("kms_named")
    with pytest.raises(PostgresError, match="already exists"):
        own_postgres.create_database("kms_named")
    with pytest.raises(ValueError, match="not a plain database name"):
        own_postgres.create_database('x"; DROP DATABASE postgres; --')


def test_restart_keeps_data_and_port_and_cuts_open_connections(
    own_postgres: PostgresServer,
) -> None:
    url = own_postgres.create_database()
    with psycopg.connect(url, autocommit=True) as connection:
        connection.execute("CREATE TABLE t (x int)")
        connection.execute("INSERT INTO t VALUES (1)")
    before_pid, port = own_postgres.pid, own_postgres.port
    held = psycopg.connect(url, autocommit=True)
    try:
        own_postgres.restart()
        assert own_postgres.port == port
        assert own_postgres.pid != before_pid
        with pytest.raises(psycopg.OperationalError):
            held.execute("SELECT 1")
    finally:
        held.close()
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]


def test_kill_then_start_recovers_committed_rows(own_postgres: PostgresServer) -> None:
    url = own_postgres.create_database()
    held = psycopg.connect(url, autocommit=True)
    try:
        held.execute("CREATE TABLE t (x int)")
        held.execute("INSERT INTO t SELECT generate_series(1, 1000)")
        own_postgres.kill()  # SIGKILL, with a client still connected
        assert not own_postgres.running
        own_postgres.start()
    finally:
        held.close()
    with psycopg.connect(url) as connection:
        assert connection.execute("SELECT count(*) FROM t").fetchone() == (1000,)


def test_stop_ends_the_process_by_pid(own_postgres: PostgresServer) -> None:
    pid = own_postgres.pid
    own_postgres.stop()
    assert not own_postgres.running
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert _refuses(own_postgres.port)
    with pytest.raises(PostgresError, match="not running"):
        _ = own_postgres.pid
    own_postgres.start()  # for the module fixture's own teardown
    assert not _refuses(own_postgres.port)
