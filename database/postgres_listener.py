"""One thread per process that hears every host's writes: ``LISTEN mock_kms_generation``.

Each write transaction bumps the ``store_generation`` row and notifies its new value at
commit (:mod:`database.postgres_engine`). The listener keeps the highest value heard; the
cache token is ``(epoch, value)``, read without a lock or a round trip. So a key disabled on
one host changes the token of every host as soon as the notification arrives, which is before
the disabling request's response has left its host in practice (the notification is sent at
commit, the response after it).

A notification alone arrives a few milliseconds after the commit, and the writer's client
may be quicker than that: host A acknowledges "key disabled", and the client's very next
request reaches host B before B's listener has heard it. So every listener also *confirms*
what it has heard, in its row of ``cache_listeners`` (``heard``, and ``lease_until``: how long
that row vouches for it), and a writer acknowledges only once no listener with a current
lease is behind its generation (:meth:`database.postgres_engine.PostgresDatabase.transaction`).
A listener whose lease ran out caches nothing (:meth:`GenerationListener.token` is None), so
a writer never has to wait for a host that is gone or cut off: at most :data:`LEASE_SECONDS`.

Lost notifications are bounded two ways:

* while the listening connection is down, :meth:`GenerationListener.token` is None, so no
  host caches anything (every read goes to the database: slower, never stale); after
  reconnecting it LISTENs first and then reads the row, so nothing committed in between is
  missed, and the epoch changes so nothing cached before the outage is reused;
* every :data:`POLL_SECONDS` it also reads the row, which catches a write whose notification
  never came (a writer other than mock-kms that bumps the row without notifying).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg

log = logging.getLogger("mock_kms.database")

#: The fallback: at most this long between reads of the generation row.
POLL_SECONDS = 1.0
#: Pause between attempts to reconnect.
RECONNECT_SECONDS = 0.5
#: How long one confirmation vouches for a listener (renewed at least every POLL_SECONDS).
#: The longest a writer waits for a listener that stopped confirming.
LEASE_SECONDS = 3.0
#: The table of confirmations (one row per listening process).
LISTENERS_TABLE = "cache_listeners"


class GenerationListener:
    """The highest write generation this process has heard of, kept current by a daemon
    thread."""

    def __init__(
        self,
        url: str,
        channel: str,
        options: dict[str, Any],
        *,
        on_reconnect: Callable[[], None] | None = None,
    ) -> None:
        self._url = url
        self._channel = channel
        self._options = options
        self._on_reconnect = on_reconnect
        self._value = 0
        self._epoch = 0
        self._live = False
        #: Monotonic time until which this listener's confirmation row vouches for it.
        self._lease_until = 0.0
        self.listener_id = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:12]}"
        self._owner_pid = os.getpid()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mock-kms-listener", daemon=True)

    def start(self, wait_seconds: float = 2.0) -> None:
        """Start listening; wait up to ``wait_seconds`` for the first connection (until then,
        and whenever it is lost, nothing is cached)."""
        self._thread.start()
        self._connected.wait(wait_seconds)

    def stop(self) -> None:
        """Stop listening, and withdraw this process's confirmation row so that writers
        stop waiting for it at once (not only when its lease ends). Safe to call twice, at
        exit, and in a forked child (where it does nothing: the row is the parent's)."""
        if os.getpid() != self._owner_pid or self._stopping.is_set():
            return
        self._stopping.set()
        self._live = False
        if not self._thread.is_alive():
            return
        options = {**self._options, "connect_timeout": 1}
        with contextlib.suppress(psycopg.Error), psycopg.connect(self._url, **options) as conn:
            self._forget(conn)

    def token(self) -> tuple[int, int] | None:
        """``(epoch, generation)`` while listening with a current lease, else None (a lapsed
        lease means writers no longer wait for this process: it must not cache)."""
        if not self._live or time.monotonic() >= self._lease_until:
            return None
        return (self._epoch, self._value)

    def observe(self, value: int) -> None:
        """Record that write ``value`` has committed (heard, polled, or made here)."""
        with self._lock:
            if value > self._value:
                self._value = value

    def _read_row(self, connection: psycopg.Connection[Any]) -> int:
        row = connection.execute("SELECT value FROM store_generation WHERE id = 1").fetchone()
        return 0 if row is None else int(row[0])

    def _confirm(self, connection: psycopg.Connection[Any]) -> None:
        """Record in this process's row what it has heard, and renew its lease. The local
        lease starts before the statement is sent, so it ends before the row's."""
        if self._stopping.is_set():
            return  # withdrawn by stop(): never put the row back
        started = time.monotonic()
        connection.execute(
            f"INSERT INTO {LISTENERS_TABLE} (listener_id, heard, lease_until)"  # noqa: S608
            " VALUES (%s, %s, clock_timestamp() + make_interval(secs => %s))"
            " ON CONFLICT (listener_id) DO UPDATE"
            " SET heard = excluded.heard, lease_until = excluded.lease_until",
            (self.listener_id, self._value, LEASE_SECONDS),
        )
        self._lease_until = started + LEASE_SECONDS

    def _forget(self, connection: psycopg.Connection[Any]) -> None:
        """Remove this process's row, and rows whose lease ended long ago (dead processes)."""
        connection.execute(
            f"DELETE FROM {LISTENERS_TABLE} WHERE listener_id = %s"  # noqa: S608
            " OR lease_until < clock_timestamp() - interval '10 minutes'",
            (self.listener_id,),
        )

    def _run(self) -> None:
        reconnecting = False
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._url, **self._options) as connection:
                    connection.execute(f"LISTEN {self._channel}")
                    # After LISTEN, so a write committed in between is in the row or heard.
                    value = self._read_row(connection)
                    with self._lock:
                        self._value = max(self._value, value)
                        self._epoch += 1
                    self._confirm(connection)
                    self._live = True
                    self._connected.set()
                    if reconnecting:
                        log.info("database notifications restored; caching again")
                        if self._on_reconnect is not None:
                            self._on_reconnect()
                    self._listen(connection)
                    with contextlib.suppress(psycopg.Error):
                        self._forget(connection)
            except psycopg.Error as exc:
                if not reconnecting:
                    log.warning("database notifications lost (%s); caching off", type(exc).__name__)
            self._live = False
            reconnecting = True
            self._connected.set()  # start() must not wait for a database that is down
            self._stopping.wait(RECONNECT_SECONDS)

    def _listen(self, connection: psycopg.Connection[Any]) -> None:
        next_poll = time.monotonic() + POLL_SECONDS
        while not self._stopping.is_set():
            # One notification at a time (more if they came in one packet), each confirmed
            # at once: a writer is waiting for that confirmation to answer its client.
            for notification in connection.notifies(timeout=POLL_SECONDS, stop_after=1):
                # A payload that is not ours is ignored: the row read below still counts.
                with contextlib.suppress(ValueError):
                    self.observe(int(notification.payload))
            if time.monotonic() >= next_poll:
                self.observe(self._read_row(connection))
                next_poll = time.monotonic() + POLL_SECONDS
            self._confirm(connection)
