"""The PostgreSQL engine: several mock-kms hosts, one database (``--database-url``).

* Connections come from a psycopg 3 pool, opened lazily in each process (never across a
  gunicorn fork). Reads outside a transaction run in autocommit on a pooled connection.
* Writers are serialised, as SQLite serialises them: every transaction first takes one
  transaction-level advisory lock, so what a transaction reads (the next material sequence
  number, whether an alias exists) stays true until it commits, on every host.
* Caches: every transaction that may invalidate them bumps the ``store_generation`` row and
  sends ``NOTIFY mock_kms_generation`` with the new value, both in the transaction, so the
  notification goes out exactly when the write becomes visible. Each process has one
  listener thread (:mod:`database.postgres_listener`); :meth:`cache_token` is two attribute
  reads, with no database round trip.
* Faults: a lost connection, a restarting server or a pool with no free connection raise
  :class:`DatabaseUnavailableError`. A read that fails on a broken pooled connection is
  retried once on a fresh one after the pool has dropped the broken ones; a write is never
  retried here (its outcome would be unknown), the client retries it.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import time
from collections.abc import Hashable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import psycopg_pool
from psycopg.types.numeric import Int8Dumper

from database.dialect import ddl_to_postgres, is_read, split_script, to_postgres
from database.engine import DatabaseHealth
from database.errors import (
    DatabaseError,
    DatabaseIntegrityError,
    DatabaseUnavailableError,
    DatabaseValueError,
)
from database.postgres_listener import LEASE_SECONDS, LISTENERS_TABLE, GenerationListener

#: The advisory lock every write transaction holds (any constant both hosts agree on).
WRITE_LOCK_ID = 0x6D6F636B6B6D73  # "mockkms"
NOTIFY_CHANNEL = "mock_kms_generation"
#: Connections per process: the request threads of a worker plus the background tasks.
POOL_MAX_SIZE = int(os.environ.get("MOCK_KMS_DATABASE_POOL_SIZE", "8"))
#: How long a request waits for a pooled connection (all busy, or the server down) before
#: it is answered with a retryable error.
POOL_TIMEOUT_S = 5.0
_CONNECTION_OPTIONS: dict[str, Any] = {
    "autocommit": True,
    "connect_timeout": 3,
    "application_name": "mock-kms",
    # A host whose database vanished without a FIN (a network partition) notices in ~25 s.
    "keepalives": 1,
    "keepalives_idle": 10,
    "keepalives_interval": 5,
    "keepalives_count": 3,
    # A statement stuck longer than this (a hung server) fails rather than holding a request
    # thread for ever; waiting for the write lock counts.
    "options": "-c statement_timeout=20000",
}
_ENGINE_TABLES = (
    "CREATE TABLE IF NOT EXISTS store_generation (id INTEGER PRIMARY KEY, value BIGINT NOT NULL)",
    "INSERT INTO store_generation (id, value) VALUES (1, 0) ON CONFLICT DO NOTHING",
    "CREATE TABLE IF NOT EXISTS schema_versions ("
    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)",
    # What each listening process has heard (database.postgres_listener).
    # Unlogged: rows that only matter while their processes live need no WAL (a crashed
    # server empties it, and every listener writes its row again on reconnecting).
    f"CREATE UNLOGGED TABLE IF NOT EXISTS {LISTENERS_TABLE} (listener_id TEXT PRIMARY KEY,"
    " heard BIGINT NOT NULL, lease_until TIMESTAMPTZ NOT NULL)",
)
#: How often a writer checks whether every listener has confirmed its write.
CONFIRM_POLL_S = 0.002
#: While the server is known to be down, at most one connection attempt per this interval;
#: every other statement fails at once rather than wait POOL_TIMEOUT_S for a pool that
#: cannot connect.
PROBE_INTERVAL_S = 0.25
#: The probe's own connect timeout (a refused connection fails at once anyway).
PROBE_CONNECT_TIMEOUT_S = 2


def redact(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)
    user = netloc[0].split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[1]}"))


class _BoolAsInteger(Int8Dumper):
    """Booleans go into the INTEGER columns SQLite uses for them (0/1), as sqlite3 does."""

    def dump(self, obj: Any) -> bytes | bytearray | memoryview[int] | None:
        return super().dump(int(obj))


def _configure(connection: psycopg.Connection[Any]) -> None:
    connection.adapters.register_dumper(bool, _BoolAsInteger)


def translate_error(exc: Exception, description: str) -> DatabaseError:
    """The engine-neutral form of a psycopg or pool error (never includes the password)."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, psycopg.DataError):
        return DatabaseValueError(f"{description}: {text}")
    if isinstance(exc, psycopg.IntegrityError):
        return DatabaseIntegrityError(f"{description}: {text}")
    if isinstance(
        exc,
        psycopg.OperationalError
        | psycopg_pool.PoolTimeout
        | psycopg_pool.PoolClosed
        | psycopg.errors.QueryCanceled,
    ):
        return DatabaseUnavailableError(f"{description}: {text}")
    return DatabaseError(f"{description}: {text}")


class FetchedRows:
    """A statement's rows, fetched before its connection went back to the pool."""

    __slots__ = ("_position", "_rows", "rowcount")

    def __init__(self, rows: list[Any], rowcount: int) -> None:
        self._rows = rows
        self._position = 0
        self.rowcount = rowcount

    def fetchone(self) -> Any:
        if self._position >= len(self._rows):
            return None
        row = self._rows[self._position]
        self._position += 1
        return row

    def fetchall(self) -> list[Any]:
        rows = self._rows[self._position :]
        self._position = len(self._rows)
        return rows

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())


def _run(connection: psycopg.Connection[Any], sql: str, params: Sequence[Any]) -> FetchedRows:
    cursor = connection.execute(to_postgres(sql), tuple(params) if params else None)
    rows = cursor.fetchall() if cursor.description is not None else []
    return FetchedRows(rows, cursor.rowcount)


class PostgresDatabase:
    """A PostgreSQL database shared by every host; see :class:`database.engine.Database`."""

    engine = "postgresql"

    def __init__(self, url: str) -> None:
        self.url = url
        self.description = redact(url)
        self._local = threading.local()
        self._lock = threading.Lock()
        self._pid = 0
        self._pool: psycopg_pool.ConnectionPool[psycopg.Connection[Any]] | None = None
        self._listener: GenerationListener | None = None
        self._prepared = False
        #: Why the server is believed down (None: believed up); see _usable_pool.
        self._down: str | None = None
        self._probed_at = 0.0
        self._probe_lock = threading.Lock()

    # --- the pool and the listener, per process --------------------------------------------
    def _open(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is None or self._pid != os.getpid():
                # After a fork the parent's pool and listener are the parent's: never touch
                # their sockets here, start afresh.
                self._pool = self._new_pool()
                self._listener = None
                self._prepared = False
                self._pid = os.getpid()
            return self._pool

    def _new_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        return psycopg_pool.ConnectionPool(
            self.url,
            kwargs=_CONNECTION_OPTIONS,
            min_size=1,
            max_size=max(POOL_MAX_SIZE, 2),
            configure=_configure,
            timeout=POOL_TIMEOUT_S,
            reconnect_timeout=30.0,
            name="mock-kms",
            open=True,
        )

    def _usable_pool(self) -> psycopg_pool.ConnectionPool[psycopg.Connection[Any]]:
        """The pool, unless the server is known to be down.

        Why: once the server is gone, the pool reconnects in the background with a growing
        backoff, and every request would wait POOL_TIMEOUT_S for it (several statements per
        request: a 25 s answer), and after the server came back the pool could take seconds
        more to try again. So a failure that means "unreachable" marks the server down
        (:meth:`_mark_down`); while down, one caller every PROBE_INTERVAL_S tries a direct
        connection and the others fail at once with DatabaseUnavailableError. The first
        probe that connects replaces the pool with a fresh one (no backoff, no connections
        that died with the old server), so every host recovers within a fraction of a
        second of the server accepting connections.
        """
        pool = self._open()
        if self._down is None:
            return pool
        if not self._probe_lock.acquire(blocking=False):
            raise DatabaseUnavailableError(self._down)
        try:
            if self._down is None:
                return self._open()
            now = time.monotonic()
            if now - self._probed_at < PROBE_INTERVAL_S:
                raise DatabaseUnavailableError(self._down)
            self._probed_at = now
            try:
                probe = psycopg.connect(
                    self.url, **{**_CONNECTION_OPTIONS, "connect_timeout": PROBE_CONNECT_TIMEOUT_S}
                )
            except psycopg.Error as exc:
                error = translate_error(exc, self.description)
                self._down = str(error)
                raise error from None
            probe.close()
            self._replace_pool()
            self._down = None
            return self._open()
        finally:
            self._probe_lock.release()

    def _mark_down(
        self, error: DatabaseError, pool: psycopg_pool.ConnectionPool[Any] | None = None
    ) -> DatabaseError:
        """Remember that the server did not answer (see :meth:`_usable_pool`); returns
        ``error``. A pool timeout counts only when the pool has no connection at all (else
        every connection is merely busy: the server is fine)."""
        if not isinstance(error, DatabaseUnavailableError) or self._down is not None:
            return error
        if pool is not None and pool.get_stats().get("pool_size", 0) > 0:
            return error
        self._down = str(error)
        return error

    def _replace_pool(self) -> None:
        """A fresh pool for this process; the old one is closed in the background (its
        connections in use go when returned)."""
        with self._lock:
            old = self._pool if self._pid == os.getpid() else None
            self._pool = self._new_pool()
            self._pid = os.getpid()
        if old is not None:
            threading.Thread(
                target=old.close, kwargs={"timeout": 1.0}, name="mock-kms-pool-close", daemon=True
            ).start()

    def _prepare(self, connection: psycopg.Connection[Any]) -> None:
        """Create the engine's own tables once per process (under the write lock, since
        concurrent ``CREATE TABLE IF NOT EXISTS`` may collide)."""
        if self._prepared:
            return
        with connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_ID,))
            for statement in _ENGINE_TABLES:
                connection.execute(statement)
        self._prepared = True

    def listener(self) -> GenerationListener:
        """This process's notification listener, started on first use."""
        self._open()
        listener = self._listener
        if listener is None:
            # The listener confirms into an engine table: create it first (if the database
            # is down, the listener retries until it is back).
            with contextlib.suppress(DatabaseError):
                self.execute("SELECT 1")
            with self._lock:
                listener = self._listener
                if listener is None:
                    listener = GenerationListener(
                        self.url, NOTIFY_CHANNEL, _CONNECTION_OPTIONS, on_reconnect=self._recheck
                    )
                    listener.start()
                    # A worker that exits (gunicorn restarting it, a host stopping) withdraws
                    # its row, so writers do not wait out its lease.
                    atexit.register(listener.stop)
                    self._listener = listener
        return listener

    def _recheck(self) -> None:
        """After the listener lost its connection (a restarted server, say) and connected
        again: the server is back. If this process had marked it down, a fresh pool at once
        (rather than at the next request's probe); else drop the pooled connections that
        died with the old server rather than let requests find them one by one."""
        pool = self._pool
        if pool is None or self._pid != os.getpid():
            return
        if self._down is not None:
            with self._probe_lock:
                if self._down is not None:
                    self._replace_pool()
                    self._down = None
            return
        with contextlib.suppress(psycopg.Error):
            pool.check()

    def close(self) -> None:
        """Nothing per thread: pooled connections go back after every statement."""

    def dispose(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                if self._listener is not None:
                    self._listener.stop()
                if self._pool is not None:
                    self._pool.close()
            self._pool = None
            self._listener = None
            self._pid = 0

    # --- statements ----------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence[Any] = ()) -> FetchedRows:
        connection: psycopg.Connection[Any] | None = getattr(self._local, "connection", None)
        if connection is not None:
            try:
                return _run(connection, sql, params)
            except psycopg.Error as exc:
                raise translate_error(exc, self.description) from None
        if not is_read(sql):
            with self.transaction():
                return self.execute(sql, params)
        for attempt in (1, 2):
            # The retry goes through _usable_pool again: after a restarted server it probes
            # and gets a fresh pool rather than another connection that died with the old.
            pool = self._usable_pool()
            try:
                with pool.connection() as pooled:
                    self._prepare(pooled)
                    return _run(pooled, sql, params)
            except psycopg.OperationalError as exc:
                error = self._mark_down(translate_error(exc, self.description))
                if attempt == 2:
                    raise error from None
            except psycopg_pool.PoolTimeout as exc:
                raise self._mark_down(translate_error(exc, self.description), pool) from None
            except (psycopg.Error, psycopg_pool.PoolClosed) as exc:
                raise translate_error(exc, self.description) from None
        raise AssertionError("unreachable")

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        rows = [tuple(row) for row in rows]
        if not rows:
            return
        with self.transaction():
            connection = self._local.connection
            try:
                with connection.cursor() as cursor:
                    cursor.executemany(to_postgres(sql), rows)
            except psycopg.Error as exc:
                raise translate_error(exc, self.description) from None

    def run_script(self, script: str) -> None:
        for statement in split_script(script):
            self.execute(ddl_to_postgres(statement))

    # --- transactions ----------------------------------------------------------------------
    def _begin(
        self,
    ) -> tuple[psycopg_pool.ConnectionPool[psycopg.Connection[Any]], psycopg.Connection[Any]]:
        """A pooled connection inside ``BEGIN`` holding the write lock, and its pool. A
        broken pooled connection (found at BEGIN, before anything was written) is replaced
        once (see :meth:`execute`)."""
        for attempt in (1, 2):
            pool = self._usable_pool()
            try:
                connection = pool.getconn()
            except psycopg_pool.PoolTimeout as exc:
                raise self._mark_down(translate_error(exc, self.description), pool) from None
            except psycopg_pool.PoolClosed as exc:
                raise translate_error(exc, self.description) from None
            try:
                self._prepare(connection)
                connection.execute("BEGIN")
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK_ID,))
                return pool, connection
            except psycopg.Error as exc:
                pool.putconn(connection)
                error = translate_error(exc, self.description)
                if attempt == 2 or not isinstance(exc, psycopg.OperationalError):
                    raise self._mark_down(error) from None
                self._mark_down(error)
        raise AssertionError("unreachable")

    @contextmanager
    def transaction(self, *, invalidates_caches: bool = True) -> Iterator[None]:
        local = self._local
        if getattr(local, "connection", None) is not None:
            yield
            return
        pool, connection = self._begin()
        generation = 0
        local.connection = connection
        try:
            try:
                if invalidates_caches:
                    generation = connection.execute(
                        "UPDATE store_generation SET value = value + 1 WHERE id = 1 RETURNING value"
                    ).fetchone()[0]  # type: ignore[index]
                    # Delivered at COMMIT, to every listening host, or not at all.
                    connection.execute(
                        "SELECT pg_notify(%s, %s)", (NOTIFY_CHANNEL, str(generation))
                    )
                yield
            except BaseException:
                # A broken connection cannot roll back: the server rolled back for us.
                with contextlib.suppress(psycopg.Error):
                    connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")
        except psycopg.Error as exc:
            raise self._mark_down(translate_error(exc, self.description)) from None
        finally:
            local.connection = None
            pool.putconn(connection)
        if generation:
            # This host sees its own write at once, without waiting for its notification.
            self.listener().observe(int(generation))
            self._wait_confirmed(int(generation))

    def _wait_confirmed(self, generation: int) -> None:
        """Return once every listening process (every worker of every host) has heard
        ``generation``, so that the caller may acknowledge the write: a request that any
        host receives after that sees it. A process that stopped confirming is waited for
        until its lease ends (after which it caches nothing), so at most LEASE_SECONDS.

        Raises :class:`DatabaseUnavailableError` only if the database cannot be asked; the
        write has committed by then, so the client's retry meets its effect (the usual
        outcome of a write whose answer was lost)."""
        deadline = time.monotonic() + LEASE_SECONDS + 1.0
        while True:
            row = self.execute(
                f"SELECT count(*) FROM {LISTENERS_TABLE}"  # noqa: S608
                " WHERE heard < ? AND lease_until > clock_timestamp()",
                (generation,),
            ).fetchone()
            if row is None or int(row[0]) == 0 or time.monotonic() >= deadline:
                return
            time.sleep(CONFIRM_POLL_S)

    # --- caches ----------------------------------------------------------------------------
    def cache_token(self) -> Hashable | None:
        if getattr(self._local, "connection", None) is not None:
            return None
        listener = self._listener
        if listener is None or self._pid != os.getpid():
            listener = self.listener()
        return listener.token()

    # --- schema ----------------------------------------------------------------------------
    def schema_version(self, component: str) -> int:
        row = self.execute(
            "SELECT version FROM schema_versions WHERE component = ?", (component,)
        ).fetchone()
        return 0 if row is None else int(row[0])

    def set_schema_version(self, component: str, version: int) -> None:
        self.execute(
            "INSERT INTO schema_versions (component, version) VALUES (?, ?)"
            " ON CONFLICT (component) DO UPDATE SET version = excluded.version",
            (component, version),
        )

    def table_columns(self, table: str) -> set[str]:
        rows = self.execute(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = current_schema() AND table_name = ?",
            (table,),
        )
        return {row[0] for row in rows}

    def health(self) -> DatabaseHealth:
        try:
            self.execute("SELECT 1").fetchone()
        except DatabaseError as exc:
            return DatabaseHealth(self.engine, False, str(exc))
        listener = self._listener
        if listener is not None and listener.token() is None:
            # Answering, but changes made by other hosts are not being heard: caching is off
            # (still correct) until the listener reconnects.
            return DatabaseHealth(self.engine, True, f"{self.description} (reconnecting)")
        return DatabaseHealth(self.engine, True, self.description)


_SHARED: dict[str, PostgresDatabase] = {}
_SHARED_LOCK = threading.Lock()


def shared_postgres_database(url: str) -> PostgresDatabase:
    """The one :class:`PostgresDatabase` of ``url`` in this process (one pool, one listener
    for the key store, the software keystore and the S3 records)."""
    with _SHARED_LOCK:
        database = _SHARED.get(url)
        if database is None:
            database = _SHARED[url] = PostgresDatabase(url)
        return database
