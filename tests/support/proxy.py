"""A small HTTP/1.1 reverse proxy that spreads requests over several hosts, one by one.

Tests put it in front of several ``mock-kms serve`` hosts so that one endpoint is served by
all of them, as a load balancer would in a deployment. Unlike a TCP balancer it chooses a host
for every *request*, not for every connection: a keep-alive client (boto3 reuses its
connections) sees its successive requests alternate between the hosts. Each client connection
starts at the next host in turn and then takes the hosts in order, so clients that open a
fresh connection per request alternate as well.

What it forwards is what the client sent: the request line, the header lines byte for byte,
and the body framed as the client framed it (``Content-Length`` or chunked, trailers included).
What it returns is what the host answered: status line, headers and body unchanged. It relays
``100 Continue`` for ``Expect: 100-continue`` (botocore sends it with S3 uploads). When a host
refuses connections (stopped, killed) the request goes to the next host, as a balancer with
health checks would send it; a host that fails after taking the request gets the client a
``502 Bad Gateway``, which SDKs retry. Upstream connections are kept alive per client
connection and host, and replaced when the host has closed them.

The proxy runs in threads of the test process and stops with :meth:`RoundRobinProxy.stop`.
"""

from __future__ import annotations

import contextlib
import itertools
import select
import socket
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from io import BufferedReader

#: Longest request or status line, and longest header section, accepted.
MAX_LINE = 65536
MAX_HEAD = 256 * 1024
#: Seconds a host may take to accept a connection, and to answer (the tests' own timeout is
#: longer than any request; this only bounds a hung host).
CONNECT_TIMEOUT = 5.0
UPSTREAM_TIMEOUT = 120.0
#: Seconds an idle client connection is kept open.
CLIENT_IDLE_TIMEOUT = 300.0
_COPY_SIZE = 65536
_BAD_GATEWAY = (
    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
    b"Connection: close\r\n\r\nthe host did not answer.\r\n"
)


class _Closed(Exception):
    """The peer closed the connection (or sent something that is not HTTP)."""


@dataclass
class _Head:
    """A request or response head: its raw bytes and what framing needs from it."""

    raw: bytes
    start_line: bytes
    headers: list[tuple[str, str]]

    def values(self, name: str) -> list[str]:
        return [value for key, value in self.headers if key == name]

    def tokens(self, name: str) -> set[str]:
        """The comma-separated tokens of every ``name`` header, lower-cased."""
        return {
            token.strip().lower()
            for value in self.values(name)
            for token in value.split(",")
            if token.strip()
        }

    @property
    def version(self) -> bytes:
        parts = self.start_line.split()
        if not parts:
            return b""
        # A request line ends with the version, a status line starts with it.
        return parts[0] if parts[0].startswith(b"HTTP/") else parts[-1]

    def wants_close(self) -> bool:
        """Whether this message ends its connection (HTTP/1.0 unless keep-alive)."""
        connection = self.tokens("connection")
        if "close" in connection:
            return True
        return self.version == b"HTTP/1.0" and "keep-alive" not in connection


def _read_head(stream: BufferedReader, *, request: bool) -> _Head | None:
    """The next message head on ``stream``; None on a clean end of stream before it.
    Raises _Closed for a stream cut mid-head or a head over the limits."""
    start = stream.readline(MAX_LINE)
    # RFC 9112 2.2: a server ignores empty lines before a request line.
    while request and start in (b"\r\n", b"\n"):
        start = stream.readline(MAX_LINE)
    if not start:
        return None
    if not start.endswith(b"\n"):
        raise _Closed("start line too long or cut")
    raw = bytearray(start)
    headers: list[tuple[str, str]] = []
    while True:
        line = stream.readline(MAX_LINE)
        if not line.endswith(b"\n") or len(raw) + len(line) > MAX_HEAD:
            raise _Closed("header section cut or too long")
        raw += line
        if line in (b"\r\n", b"\n"):
            break
        name, colon, value = line.partition(b":")
        if colon:
            headers.append(
                (name.strip().lower().decode("latin-1"), value.strip().decode("latin-1"))
            )
    return _Head(bytes(raw), start.rstrip(b"\r\n"), headers)


def _is_chunked(head: _Head) -> bool:
    codings = [c.strip().lower() for v in head.values("transfer-encoding") for c in v.split(",")]
    return bool(codings) and codings[-1] == "chunked"


def _content_length(head: _Head) -> int | None:
    """The declared body length; None when absent; -1 when unusable (the host decides what
    such a request gets, and the connection is not reused after it)."""
    values = head.values("content-length")
    if not values:
        return None
    lengths = {value.strip() for value in ",".join(values).split(",")}
    if len(lengths) != 1:
        return -1
    (length,) = lengths
    return int(length) if length.isdigit() else -1


def _copy_exact(stream: BufferedReader, size: int, sink: Callable[[bytes], None]) -> None:
    while size > 0:
        data = stream.read(min(size, _COPY_SIZE))
        if not data:
            raise _Closed("body cut")
        sink(data)
        size -= len(data)


def _copy_chunked(stream: BufferedReader, sink: Callable[[bytes], None]) -> None:
    """Copy one chunked body, framing and trailers included, byte for byte."""
    while True:
        line = stream.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise _Closed("chunk size line cut")
        sink(line)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _Closed("bad chunk size") from None
        if size == 0:
            break
        _copy_exact(stream, size + 2, sink)  # the data and its CRLF
    while True:  # trailer section, up to its empty line
        line = stream.readline(MAX_LINE)
        if not line.endswith(b"\n"):
            raise _Closed("trailers cut")
        sink(line)
        if line in (b"\r\n", b"\n"):
            return


def _copy_to_end(stream: BufferedReader, sink: Callable[[bytes], None]) -> None:
    while data := stream.read1(_COPY_SIZE):
        sink(data)


class _Upstream:
    """One connection to a host."""

    def __init__(self, index: int, address: tuple[str, int]) -> None:
        self.index = index
        self.sock = socket.create_connection(address, timeout=CONNECT_TIMEOUT)
        self.sock.settimeout(UPSTREAM_TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.stream: BufferedReader = self.sock.makefile("rb")
        self.used = False

    def stale(self) -> bool:
        """Whether the host has closed this idle connection (readable with nothing to say)."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            self.sock.close()


class RoundRobinProxy:
    """Forward each request arriving on 127.0.0.1:``port`` to the next of ``upstreams``."""

    def __init__(self, upstreams: Sequence[tuple[str, int]], port: int = 0) -> None:
        if not upstreams:
            raise ValueError("a proxy needs at least one host")
        self.upstreams = list(upstreams)
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", port))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._threads: set[threading.Thread] = set()
        self._next_start = itertools.count()
        #: Requests sent to each host (by index in ``upstreams``).
        self.counts = [0] * len(self.upstreams)
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinProxy:
        self._acceptor.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Stop accepting, cut every open connection (client and host side), and wait for
        the proxy's threads to end."""
        self._stopping.set()
        if self._acceptor.is_alive():
            self._acceptor.join(timeout)
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            sockets = list(self._sockets)
            threads = list(self._threads)
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(timeout)

    # --- connections -------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(
                target=self._serve_client, args=(client,), name="proxy-client", daemon=True
            )
            with self._lock:
                self._sockets.add(client)
                self._threads.add(thread)
            thread.start()

    def _track(self, sock: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._sockets.add(sock)
            else:
                self._sockets.discard(sock)

    def _serve_client(self, client: socket.socket) -> None:
        client.settimeout(CLIENT_IDLE_TIMEOUT)
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        session = _ClientSession(self, client)
        try:
            session.run()
        finally:
            session.close()
            self._track(client, add=False)
            with self._lock:
                self._threads.discard(threading.current_thread())

    def _count(self, index: int) -> None:
        with self._lock:
            self.counts[index] += 1


class _ClientSession:
    """The requests of one client connection, each sent to the next host in turn."""

    def __init__(self, proxy: RoundRobinProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.stream: BufferedReader = client.makefile("rb")
        self.turn = next(proxy._next_start)
        self.upstreams: dict[int, _Upstream] = {}

    def run(self) -> None:
        with contextlib.suppress(_Closed, OSError):
            while not self.proxy._stopping.is_set() and self._one_request():
                pass

    def close(self) -> None:
        for upstream in list(self.upstreams.values()):
            self._drop(upstream)
        with contextlib.suppress(OSError):
            self.stream.close()
        with contextlib.suppress(OSError):
            self.client.close()

    # --- hosts -------------------------------------------------------------------------------
    def _drop(self, upstream: _Upstream) -> None:
        if self.upstreams.get(upstream.index) is upstream:
            del self.upstreams[upstream.index]
        self.proxy._track(upstream.sock, add=False)
        upstream.close()

    def _connect(self, index: int) -> _Upstream:
        upstream = _Upstream(index, self.proxy.upstreams[index])
        self.proxy._track(upstream.sock, add=True)
        self.upstreams[index] = upstream
        return upstream

    def _pick(self) -> _Upstream | None:
        """A connection to the next host in turn that takes connections, reused when the host
        has kept it open; None when no host takes connections."""
        count = len(self.proxy.upstreams)
        first = self.turn % count
        self.turn += 1
        for offset in range(count):
            index = (first + offset) % count
            upstream = self.upstreams.get(index)
            if upstream is not None and upstream.stale():
                self._drop(upstream)
                upstream = None
            if upstream is not None:
                return upstream
            try:
                return self._connect(index)
            except OSError:
                continue  # refused: that host is down, the next one takes the request
        return None

    # --- one exchange ------------------------------------------------------------------------
    def _one_request(self) -> bool:
        """Forward one request and its answer; whether the client connection stays open."""
        head = _read_head(self.stream, request=True)
        if head is None:
            return False
        upstream = self._pick()
        if upstream is None:
            self._drain_body(head)
            self.client.sendall(_BAD_GATEWAY)
            return False
        self.proxy._count(upstream.index)
        body = bytearray()
        if "100-continue" in head.tokens("expect"):
            answered, interim = self._await_continue(upstream, head)
            if answered is None or interim is None:
                return self._bad_gateway(answered)
            upstream = answered
            if interim.start_line.split()[1:2] != [b"100"]:
                # The host answered without wanting the body: relay that, then close (the
                # client may or may not send the body it announced).
                self._relay_response(upstream, head, interim)
                self._drop(upstream)
                return False
            self.client.sendall(interim.raw)
            self._stream_body(head, upstream, body)
            response = self._read_final_head(upstream)
        else:
            reused = upstream.used
            upstream.used = True
            sent = self._send(upstream, head.raw)
            # Even when the host stopped reading (it answered early), the body is read to its
            # end, so that the client sees the answer rather than a reset connection.
            self._stream_body(head, upstream if sent else None, body)
            response = self._read_final_head(upstream)
            if response is None and reused:
                # A kept-alive connection the host closed as it was reused: send the request
                # again on a fresh connection (what HTTP clients do in this case).
                upstream = self._reconnect(upstream)
                if upstream is not None and self._send(upstream, head.raw + bytes(body)):
                    response = self._read_final_head(upstream)
        if upstream is None or response is None:
            return self._bad_gateway(upstream)
        keep_upstream = self._relay_response(upstream, head, response)
        if not keep_upstream:
            self._drop(upstream)
        complete = _content_length(head) != -1
        return keep_upstream and complete and not head.wants_close()

    def _reconnect(self, upstream: _Upstream) -> _Upstream | None:
        """A fresh connection to ``upstream``'s host in place of it; None when refused."""
        self._drop(upstream)
        try:
            fresh = self._connect(upstream.index)
        except OSError:
            return None
        fresh.used = True
        return fresh

    def _bad_gateway(self, upstream: _Upstream | None) -> bool:
        if upstream is not None:
            self._drop(upstream)
        self.client.sendall(_BAD_GATEWAY)
        return False

    def _send(self, upstream: _Upstream, data: bytes) -> bool:
        try:
            upstream.sock.sendall(data)
        except OSError:
            return False
        return True

    def _await_continue(
        self, upstream: _Upstream, head: _Head
    ) -> tuple[_Upstream | None, _Head | None]:
        """Send the head of an ``Expect: 100-continue`` request; returns the connection used
        and the host's first answer (the interim 100, or a final refusal), or None as the
        answer when the host does not answer (once more on a fresh connection if a kept-alive
        one was closed under us)."""
        reused = upstream.used
        upstream.used = True
        current: _Upstream | None = upstream
        for attempt in range(2):
            assert current is not None
            if self._send(current, head.raw):
                with contextlib.suppress(_Closed, OSError):
                    answer = _read_head(current.stream, request=False)
                    if answer is not None:
                        return current, answer
            if attempt == 1 or not reused:
                break
            current = self._reconnect(current)
            if current is None:
                break
        return current, None

    def _stream_body(self, head: _Head, upstream: _Upstream | None, record: bytearray) -> bool:
        """Copy the client's body to ``upstream`` as it arrives (and into ``record``); whether
        the host took all of it. A host that stops reading (None: it had stopped already) does
        not stop the copy: the rest is read from the client into ``record`` only."""
        state = {"ok": upstream is not None}

        def sink(data: bytes) -> None:
            record.extend(data)
            if state["ok"] and upstream is not None:
                state["ok"] = self._send(upstream, data)

        self._copy_body(head, sink)
        return state["ok"]

    def _drain_body(self, head: _Head) -> None:
        self._copy_body(head, lambda data: None)

    def _copy_body(self, head: _Head, sink: Callable[[bytes], None]) -> None:
        if _is_chunked(head):
            _copy_chunked(self.stream, sink)
            return
        length = _content_length(head)
        if length is not None and length > 0:
            _copy_exact(self.stream, length, sink)

    def _read_final_head(self, upstream: _Upstream) -> _Head | None:
        """The host's final response head (1xx interim answers other than 100 relayed, 100s
        dropped: the client got its one 100 already or did not ask); None if the host closed
        or failed before answering."""
        try:
            while True:
                answer = _read_head(upstream.stream, request=False)
                if answer is None:
                    return None
                status = answer.start_line.split()[1:2]
                if not (status and status[0].startswith(b"1")) or status == [b"101"]:
                    return answer
                if status != [b"100"]:
                    self.client.sendall(answer.raw)
        except (_Closed, OSError):
            return None

    def _relay_response(self, upstream: _Upstream, request: _Head, response: _Head) -> bool:
        """Send ``response`` and its body to the client unchanged; whether the host connection
        can carry another request."""
        self.client.sendall(response.raw)
        parts = response.start_line.split()
        status = parts[1] if len(parts) > 1 else b""
        method = request.start_line.split()[0] if request.start_line else b""
        if method == b"HEAD" or status in (b"204", b"304"):
            return not response.wants_close()
        # A host that dies mid-answer raises _Closed: the client's connection is closed too,
        # as its answer can no longer be framed.
        if _is_chunked(response):
            _copy_chunked(upstream.stream, self.client.sendall)
        else:
            length = _content_length(response)
            if length is None or length < 0:
                _copy_to_end(upstream.stream, self.client.sendall)
                return False  # the end of the body was the end of the connection
            _copy_exact(upstream.stream, length, self.client.sendall)
        return not response.wants_close() and not request.wants_close()


@contextlib.contextmanager
def running_proxy(upstreams: Sequence[tuple[str, int]]) -> Iterator[RoundRobinProxy]:
    """A started :class:`RoundRobinProxy` over ``upstreams``, stopped on exit."""
    proxy = RoundRobinProxy(upstreams).start()
    try:
        yield proxy
    finally:
        proxy.stop()
