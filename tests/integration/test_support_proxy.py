"""The round-robin reverse proxy of tests/support/proxy.py, in front of stdlib HTTP servers
(``http.server``, code no one here wrote) that report what reached them and who they are."""

from __future__ import annotations

import hashlib
import http.client
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.support.proxy import RoundRobinProxy, running_proxy


class _EchoHandler(BaseHTTPRequestHandler):
    """Answers every request with JSON: which host, the method, path, headers, and the body
    it received (length and SHA-256, de-chunked). Paths select special answers."""

    protocol_version = "HTTP/1.1"
    server: _Host

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            body = bytearray()
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n"):
                        pass
                    return bytes(body)
                body += self.rfile.read(size)
                self.rfile.readline()
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self) -> None:
        body = self._body()
        self.server.seen.append(self.path)
        report = json.dumps(
            {
                "host": self.server.name,
                "method": self.command,
                "path": self.path,
                "headers": [[k, v] for k, v in self.headers.items()],
                "length": len(body),
                "sha256": hashlib.sha256(body).hexdigest(),
            }
        ).encode()
        if self.path == "/teapot":
            self.send_response(418, "I'm a teapot")
            self.send_header("X-Odd-Header", "  spaced value ")
            self.send_header("Set-Cookie", "a=1")
            self.send_header("Set-Cookie", "b=2")
            self.send_header("Content-Length", str(len(report)))
            self.end_headers()
            self.wfile.write(report)
        elif self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for start in range(0, len(report), 7):
                piece = report[start : start + 7]
                self.wfile.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            self.wfile.write(b"0\r\nX-Trailer: yes\r\n\r\n")
        elif self.path == "/until-close":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(report)
            self.close_connection = True
        else:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(report)))
            self.end_headers()
            self.wfile.write(report)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "1234")  # what a GET would send; no body here
        self.end_headers()


class _Host(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, name: str) -> None:
        super().__init__(("127.0.0.1", 0), _EchoHandler)
        self.name = name
        self.seen: list[str] = []
        self.thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    @property
    def address(self) -> tuple[str, int]:
        return ("127.0.0.1", self.server_address[1])

    def close(self) -> None:
        self.shutdown()
        self.server_close()


@pytest.fixture()
def hosts() -> Iterator[list[_Host]]:
    started = [_Host("a"), _Host("b")]
    yield started
    for host in started:
        host.close()


@pytest.fixture()
def proxy(hosts: list[_Host]) -> Iterator[RoundRobinProxy]:
    with running_proxy([host.address for host in hosts]) as started:
        yield started


def _post(connection: http.client.HTTPConnection, path: str = "/", body: bytes = b"") -> dict:
    connection.request("POST", path, body=body, headers={"X-Test": "1"})
    response = connection.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def test_a_keep_alive_connection_alternates_between_hosts(proxy: RoundRobinProxy) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        _post(connection)
        sock = connection.sock
        served = [_post(connection)["host"] for _ in range(9)]
        assert connection.sock is sock  # one client connection for all of them
    finally:
        connection.close()
    assert served in (["b", "a"] * 4 + ["b"], ["a", "b"] * 4 + ["a"])
    assert proxy.counts == [5, 5]


def test_a_connection_per_request_alternates_too(proxy: RoundRobinProxy) -> None:
    served = []
    for _ in range(6):
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            served.append(_post(connection)["host"])
        finally:
            connection.close()
    assert sorted(served) == ["a"] * 3 + ["b"] * 3
    assert all(first != second for first, second in itertools.pairwise(served))


def test_concurrent_keep_alive_clients_each_alternate(proxy: RoundRobinProxy) -> None:
    """Two clients interleaving their requests are not pinned to one host each."""
    results: dict[int, list[str]] = {}

    def client(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            results[number] = [_post(connection)["host"] for _ in range(20)]
        finally:
            connection.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for served in results.values():
        assert served.count("a") == served.count("b") == 10
    assert proxy.counts == [20, 20]


def test_request_is_forwarded_unchanged(proxy: RoundRobinProxy) -> None:
    body = os.urandom(3 * 1024 * 1024 + 17)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=30)
    try:
        connection.request(
            "PUT",
            "/some/path?x=1&y=%2F",
            body=body,
            headers={"X-Amz-Target": "TrentService.ListKeys", "x-MiXeD-case": "v a l"},
        )
        report = json.loads(connection.getresponse().read())
    finally:
        connection.close()
    assert report["method"] == "PUT"
    assert report["path"] == "/some/path?x=1&y=%2F"
    assert report["length"] == len(body)
    assert report["sha256"] == hashlib.sha256(body).hexdigest()
    headers = dict(report["headers"])
    assert headers["X-Amz-Target"] == "TrentService.ListKeys"
    assert headers["x-MiXeD-case"] == "v a l"  # name spelling and value as sent
    assert headers["Host"] == f"127.0.0.1:{proxy.port}"  # the client's, not rewritten


def _raw_exchange(port: int, data: bytes, *, read_until_close: bool = True) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_chunked_request_body_reaches_the_host(proxy: RoundRobinProxy) -> None:
    payload = os.urandom(200_000)
    chunks = b"".join(
        b"%x;ext=1\r\n%b\r\n" % (len(payload[i : i + 65536]), payload[i : i + 65536])
        for i in range(0, len(payload), 65536)
    )
    request = (
        b"POST /chunked-in HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Connection: close\r\n\r\n" + chunks + b"0\r\nX-Trailer: 1\r\n\r\n"
    )
    answer = _raw_exchange(proxy.port, request)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200")
    report = json.loads(body)
    assert report["length"] == len(payload)
    assert report["sha256"] == hashlib.sha256(payload).hexdigest()


def test_answers_are_returned_unchanged(proxy: RoundRobinProxy, hosts: list[_Host]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        connection.request("GET", "/teapot")
        teapot = connection.getresponse()
        assert (teapot.status, teapot.reason) == (418, "I'm a teapot")
        assert teapot.getheader("X-Odd-Header") == "spaced value "  # byte for byte
        assert teapot.msg.get_all("Set-Cookie") == ["a=1", "b=2"]
        assert json.loads(teapot.read())["path"] == "/teapot"
        # A chunked answer, trailers and all, on the same connection.
        connection.request("GET", "/chunked")
        chunked = connection.getresponse()
        assert chunked.getheader("Transfer-Encoding") == "chunked"
        assert json.loads(chunked.read())["path"] == "/chunked"
        # HEAD: headers announce a length, no body follows; the connection stays usable.
        connection.request("HEAD", "/")
        head = connection.getresponse()
        assert head.getheader("Content-Length") == "1234"
        assert head.read() == b""
        assert _post(connection)["path"] == "/"
    finally:
        connection.close()


def test_an_answer_ended_by_close_ends_the_client_connection(proxy: RoundRobinProxy) -> None:
    answer = _raw_exchange(proxy.port, b"GET /until-close HTTP/1.1\r\nHost: x\r\n\r\n")
    head, _, body = answer.partition(b"\r\n\r\n")
    assert b"Connection: close" in head
    assert json.loads(body)["path"] == "/until-close"  # all of it, then the proxy closed


def test_expect_100_continue_is_relayed(proxy: RoundRobinProxy) -> None:
    """botocore's S3 uploads: headers first, the body only after the host's 100 Continue."""
    body = b"x" * 5000
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        sock.sendall(
            b"PUT /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\n"
            b"Expect: 100-continue\r\n\r\n"
        )
        interim = sock.recv(65536)
        assert interim.startswith(b"HTTP/1.1 100")
        sock.sendall(body)
        answer = b""
        while b"}" not in answer:
            answer += sock.recv(65536)
    assert json.loads(answer.partition(b"\r\n\r\n")[2])["length"] == 5000


def test_a_stopped_host_is_skipped(proxy: RoundRobinProxy, hosts: list[_Host]) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        first = _post(connection)["host"]
        other = next(host for host in hosts if host.name != first)
        other.close()  # its kept-alive connection is closed too, when its thread ends
        time.sleep(0.2)
        served = [_post(connection)["host"] for _ in range(4)]
    finally:
        connection.close()
    assert served == [first] * 4


def test_connections_a_host_closed_while_idle_are_replaced(
    proxy: RoundRobinProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hosts drop idle kept-alive connections (as gunicorn does after its keepalive):
    the proxy opens new ones instead of failing the client's next requests."""
    monkeypatch.setattr(_EchoHandler, "timeout", 0.3)
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        before = [_post(connection)["host"] for _ in range(2)]
        time.sleep(1.0)  # both host connections are closed by now
        after = [_post(connection)["host"] for _ in range(4)]
    finally:
        connection.close()
    assert sorted(before) == ["a", "b"]
    assert after == before * 2


def test_no_host_gives_502(hosts: list[_Host]) -> None:
    with running_proxy([host.address for host in hosts]) as proxy:
        for host in hosts:
            host.close()
        connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        try:
            connection.request("POST", "/", body=b"{}")
            response = connection.getresponse()
            assert response.status == 502
            response.read()
        finally:
            connection.close()


def test_stop_cuts_idle_clients_and_frees_the_port(hosts: list[_Host]) -> None:
    proxy = RoundRobinProxy([host.address for host in hosts]).start()
    connection = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    _post(connection)  # an idle keep-alive client (and host connection) stay open
    started = time.monotonic()
    proxy.stop()
    assert time.monotonic() - started < 5
    assert not [t for t in threading.enumerate() if t.name.startswith("proxy-")]
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", proxy.port), timeout=2).close()
    connection.close()
