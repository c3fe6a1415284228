"""The PostgreSQL server of the ``mock-kms-postgres*`` systems, and its statement counters.

The server is the tests' own (:mod:`tests.support.postgres`: Debian's ``initdb`` and
``postgres`` in a temporary directory, as an unprivileged user when the bench runs as root,
stopped by its PID), started once per bench run on first use, with ``pg_stat_statements``
loaded so that every statement a host sends is counted. Each system gets a database of its own,
so its counts are its own.

Database round trips: psycopg sends each statement (``BEGIN`` and ``COMMIT`` included) as one
exchange with the server, so the ``calls`` of ``pg_stat_statements`` summed over a system's
database are its round trips; the bench reads them before and after each run and divides the
difference by the requests wrk counted.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tests.support.postgres import PostgresServer

#: Everything a statement's text may differ in that does not make it another statement.
_SPACES = re.compile(r"\s+")


def unavailable_reason() -> str | None:
    """Why the PostgreSQL systems cannot run on this machine, or None when they can."""
    try:
        import psycopg  # noqa: F401

        from tests.support.postgres import MISSING_REASON, postgres_available
    except ImportError as exc:
        return f"cannot import the PostgreSQL support ({exc})"
    if not postgres_available():
        return MISSING_REASON
    return None


@dataclass(frozen=True)
class StatementCounts:
    """What one database has executed so far: calls per statement text, and commits."""

    calls: Mapping[str, int]
    commits: int

    def minus(self, before: StatementCounts) -> StatementCounts:
        """The statements run since ``before`` (statements with no new call left out)."""
        calls = {
            text: count - before.calls.get(text, 0)
            for text, count in self.calls.items()
            if count > before.calls.get(text, 0)
        }
        return StatementCounts(calls, self.commits - before.commits)

    def plus(self, other: StatementCounts) -> StatementCounts:
        """Both sets of statements together."""
        calls = dict(self.calls)
        for text, count in other.calls.items():
            calls[text] = calls.get(text, 0) + count
        return StatementCounts(calls, self.commits + other.commits)

    @property
    def total(self) -> int:
        return sum(self.calls.values())


class BenchPostgres:
    """One PostgreSQL server for the bench run, started on first use; :meth:`close` stops it."""

    def __init__(self) -> None:
        self._server: PostgresServer | None = None
        self._failure: str | None = None

    @property
    def server(self) -> PostgresServer:
        """The running server (started now if it is not). Raises RuntimeError if it cannot
        start (once: later calls repeat the reason without trying again)."""
        if self._failure is not None:
            raise RuntimeError(self._failure)
        if self._server is None:
            try:
                self._server = _start_with_statement_counting()
            except Exception as exc:
                self._failure = f"PostgreSQL did not start: {exc}"
                raise RuntimeError(self._failure) from exc
        return self._server

    @property
    def pid(self) -> int | None:
        """The postmaster's PID (its backends are its children), None before the start."""
        return None if self._server is None else self._server.pid

    def create_database(self, name: str) -> str:
        """A fresh database for system ``name``; returns the URL mock-kms connects with."""
        return self.server.create_database(_database_name(name))

    def counts(self, system: str) -> StatementCounts:
        """The statements executed so far in ``system``'s database (all its hosts)."""
        import psycopg

        database = _database_name(system)
        with psycopg.connect(self._stats_url(), autocommit=True) as connection:
            rows = connection.execute(
                "SELECT s.query, s.calls FROM pg_stat_statements s"
                " JOIN pg_database d ON d.oid = s.dbid WHERE d.datname = %s",
                (database,),
            ).fetchall()
            commit_row = connection.execute(
                "SELECT xact_commit FROM pg_stat_database WHERE datname = %s", (database,)
            ).fetchone()
        calls: dict[str, int] = {}
        for query, count in rows:
            text = _SPACES.sub(" ", str(query)).strip()
            calls[text] = calls.get(text, 0) + int(count)
        return StatementCounts(calls, int(commit_row[0]) if commit_row else 0)

    def _stats_url(self) -> str:
        # The superuser on the ``postgres`` database, where the counters are read from.
        return self.server.admin_url

    def close(self) -> None:
        """Stop the server by its PID and remove its directory."""
        if self._server is not None:
            self._server.close()
            self._server = None


def _database_name(system: str) -> str:
    return "bench_" + re.sub(r"[^a-z0-9]", "_", system.lower())


def _start_with_statement_counting() -> PostgresServer:
    """Start the tests' PostgreSQL, then restart it with ``pg_stat_statements`` preloaded
    (a preloaded library cannot be added to a running server) and create the extension in the
    ``postgres`` database, from which every database's counters are visible (the bench's own
    statements run there, so they are never counted against a system)."""
    import psycopg

    from tests.support.postgres import start_postgres

    server = start_postgres()
    try:
        admin = server.admin_url
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        server.restart()
        with psycopg.connect(admin, autocommit=True) as connection:
            # Its default pg_stat_statements.track_utility = on counts BEGIN and COMMIT too.
            connection.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except BaseException:
        server.close()
        raise
    return server


def round_trip_row(
    system: str,
    operation: str,
    requests: int,
    seconds: float,
    delta: StatementCounts,
    lock_held_fraction: float | None = None,
) -> dict[str, Any]:
    """One row of the round-trip table, from the statements of ``requests`` requests over
    ``seconds``: round trips and write transactions per request, the statements the hosts
    ran by the clock (per second, not per request) and, given the fraction of the time the
    write lock was held, how long each write transaction held it.

    ``pg_stat_statements`` on PostgreSQL 15 misses most ``BEGIN`` and ``COMMIT`` sent with
    the extended query protocol (as psycopg sends them), so they are not taken from it: every
    write transaction takes the write lock exactly once (database/postgres_engine.py), so it
    is ``BEGIN``, the lock, its statements and ``COMMIT``: two round trips per lock taken.
    """
    background = sum(count for text, count in delta.calls.items() if is_background(text))
    locks = sum(count for text, count in delta.calls.items() if text.startswith(_WRITE_LOCK))
    statements = sum(
        count
        for text, count in delta.calls.items()
        if not is_background(text) and text not in _TRANSACTION_CONTROL
    )
    top = sorted(delta.calls.items(), key=lambda item: -item[1])[:12]
    hold_ms = (
        lock_held_fraction * seconds / locks * 1000
        if lock_held_fraction is not None and locks
        else None
    )
    return {
        "system": system,
        "operation": operation,
        "requests": requests,
        "round_trips_per_request": (statements + 2 * locks) / requests if requests else None,
        "write_transactions_per_request": locks / requests if requests else None,
        "background_per_second": background / seconds if seconds else None,
        "lock_held_fraction": lock_held_fraction,
        "lock_hold_ms": hold_ms,
        "statements": [{"calls": count, "query": text[:160]} for text, count in top],
    }


_WRITE_LOCK = "SELECT pg_advisory_xact_lock("
_TRANSACTION_CONTROL = frozenset({"BEGIN", "COMMIT", "ROLLBACK"})


class LockSampler:
    """How much of the time some transaction holds the write lock of one database: a thread
    that looks at ``pg_locks`` every ``interval`` seconds while a run goes on."""

    def __init__(self, postgres: BenchPostgres, system: str, interval: float = 0.01) -> None:
        self._url = postgres._stats_url()
        self._database = _database_name(system)
        self._interval = interval
        self._samples = 0
        self._held = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="lock-sampler")

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self._url, autocommit=True) as connection:
            while not self._stop.is_set():
                row = connection.execute(
                    "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database"
                    " WHERE l.locktype = 'advisory' AND l.granted AND d.datname = %s",
                    (self._database,),
                ).fetchone()
                self._samples += 1
                self._held += 1 if row and row[0] else 0
                self._stop.wait(self._interval)

    def start(self) -> LockSampler:
        self._thread.start()
        return self

    def stop(self) -> float | None:
        """Stop; returns the fraction of samples in which the lock was held (None: none)."""
        self._stop.set()
        self._thread.join(timeout=5)
        return self._held / self._samples if self._samples else None


#: Statements every host runs by the clock, not per request: the notification listener's
#: fallback read of the generation row (database/postgres_listener.py, once a second per
#: process) and the refresh of the shared settings (kms_service/operations/shared_settings.py).
BACKGROUND_STATEMENTS = (
    "SELECT value FROM store_generation WHERE id",
    "SELECT name, value FROM service_settings",
)


def is_background(text: str) -> bool:
    """Whether ``text`` starts like one of :data:`BACKGROUND_STATEMENTS`."""
    return text.startswith(BACKGROUND_STATEMENTS)
