"""HTTP/1.1 over ``http.client`` with one keep-alive connection per thread.

A KMS call is one synchronous request, so a thread never needs two connections at once; giving
each thread its own avoids locking and lets many threads share one client. Connections are
dropped and reopened after a fork (a socket shared by two processes interleaves their bytes),
after any error, and when the server has closed an idle connection.
"""

from __future__ import annotations

import http.client
import os
import select
import socket
import ssl
import threading
import weakref
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from clients.kms.errors import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    ReadTimeoutError,
)


@dataclass(frozen=True)
class HttpResponse:
    """A complete response: status, reason phrase, headers (last value wins) and body."""

    status: int
    reason: str
    headers: dict[str, str]
    body: bytes


class _Slot(threading.local):
    connection: http.client.HTTPConnection | None = None
    pid: int = 0


class ConnectionPool:
    """Per-thread persistent connections to one endpoint.

    ``connect_timeout`` bounds the TCP connect and TLS handshake; ``read_timeout`` bounds each
    wait for response bytes. ``ssl_context`` is used for https (default: system trust store).
    """

    def __init__(
        self,
        endpoint_url: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        parts = urlsplit(endpoint_url)
        self.endpoint_url = endpoint_url
        self.scheme = parts.scheme
        self.host = parts.hostname or ""
        self.port = parts.port
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.ssl_context = ssl_context or (
            ssl.create_default_context() if self.scheme == "https" else None
        )
        self._slot = _Slot()
        # Weak, so a thread that ends takes its connection with it; close() reaches the rest.
        self._open: weakref.WeakSet[http.client.HTTPConnection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self.connections_opened = 0

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResponse:
        """Send one request and read the whole response.

        Raises :class:`ConnectTimeoutError` / :class:`EndpointConnectionError` if no connection
        could be made, :class:`ReadTimeoutError` if the server went quiet, and
        :class:`ConnectionClosedError` if it hung up mid-exchange. A request that fails because
        a reused keep-alive connection had been closed by the server is resent once on a new
        connection (the race between an idle timeout and a new request, which http.client's
        documentation tells callers to handle).
        """
        try:
            return self._exchange(method, path, headers, body)
        except _StaleConnection:
            return self._exchange(method, path, headers, body)

    def close(self) -> None:
        """Close every connection this pool opened, in every thread."""
        with self._lock:
            connections = list(self._open)
            self._open.clear()
        for connection in connections:
            connection.close()

    # --- internals -----------------------------------------------------------------------------
    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        """This thread's connection, opened if needed, and whether it was used before."""
        slot = self._slot
        connection = slot.connection
        if connection is not None:
            if slot.pid == os.getpid() and connection.sock is not None:
                if not _peer_closed(connection.sock):
                    return connection, True
                connection.close()
            slot.connection = None
        connection = self._new_connection()
        try:
            connection.connect()
        except TimeoutError as exc:
            connection.close()
            raise ConnectTimeoutError(
                f"Connect timeout on endpoint URL: {self.endpoint_url!r}",
                endpoint_url=self.endpoint_url,
            ) from exc
        except OSError as exc:
            connection.close()
            raise EndpointConnectionError(
                f"Could not connect to the endpoint URL: {self.endpoint_url!r} ({exc})",
                endpoint_url=self.endpoint_url,
            ) from exc
        assert connection.sock is not None
        connection.sock.settimeout(self.read_timeout)
        slot.connection, slot.pid = connection, os.getpid()
        with self._lock:
            self._open.add(connection)
            self.connections_opened += 1
        return connection, False

    def _new_connection(self) -> http.client.HTTPConnection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(
                self.host, self.port, timeout=self.connect_timeout, context=self.ssl_context
            )
        return http.client.HTTPConnection(self.host, self.port, timeout=self.connect_timeout)

    def _exchange(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes
    ) -> HttpResponse:
        connection, reused = self._connection()
        try:
            connection.request(method, path, body=body, headers=dict(headers))
            response = connection.getresponse()
            data = response.read()
        except TimeoutError as exc:
            self._discard(connection)
            raise ReadTimeoutError(
                f"Read timeout on endpoint URL: {self.endpoint_url!r}",
                endpoint_url=self.endpoint_url,
            ) from exc
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as exc:
            self._discard(connection)
            if reused:
                raise _StaleConnection(str(exc), endpoint_url=self.endpoint_url) from exc
            raise ConnectionClosedError(
                f"Connection to {self.endpoint_url} closed before a response: {exc!r}",
                endpoint_url=self.endpoint_url,
            ) from exc
        except (http.client.HTTPException, OSError) as exc:
            self._discard(connection)
            raise ConnectionClosedError(
                f"Connection to {self.endpoint_url} failed: {exc!r}",
                endpoint_url=self.endpoint_url,
            ) from exc
        if response.will_close:
            self._discard(connection)
        return HttpResponse(
            status=response.status,
            reason=response.reason,
            headers=dict(response.getheaders()),
            body=data,
        )

    def _discard(self, connection: http.client.HTTPConnection) -> None:
        connection.close()
        if self._slot.connection is connection:
            self._slot.connection = None


class _StaleConnection(ConnectionClosedError):
    """Internal: a reused keep-alive connection turned out to be closed by the server."""


def _peer_closed(sock: socket.socket) -> bool:
    """True if an idle connection is readable, i.e. the server closed it (or sent junk)."""
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):
        return True
    return bool(readable)
