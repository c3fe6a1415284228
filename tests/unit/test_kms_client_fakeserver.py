"""A scripted HTTP/1.1 server on a loopback port, for the KMS client's unit tests.

It answers each request with the next :class:`Reply` of its script (the last one repeats) and
records what it received, so tests can count attempts and connections. It runs in a thread of
the test process and is shut down by the test that started it. The self-tests at the bottom
check the helper itself, so a broken fake cannot make client tests pass vacuously.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from clients.kms import KmsClient, RetryPolicy


@dataclass
class Reply:
    """One scripted answer.

    ``hang_up`` closes the connection without answering; ``close_after`` answers and then
    closes the connection without announcing it (an idle keep-alive timeout); ``delay`` waits
    before answering (for read timeouts).
    """

    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    hang_up: bool = False
    close_after: bool = False

    def payload(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()


def error_reply(status: int, code: str, message: str | None = None) -> Reply:
    """An AWS JSON 1.1 error answer."""
    body: dict[str, str] = {"__type": code}
    if message is not None:
        body["message"] = message
    return Reply(status=status, body=body)


@dataclass
class Recorded:
    """A request as the server received it."""

    method: str
    path: str
    headers: Message
    body: bytes
    client_port: int

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (read timeout, hang-up tests) makes the late write fail with
        # BrokenPipe; that is the scenario under test, not a server bug worth printing.
        pass


class ScriptedServer:
    """``with ScriptedServer([Reply(...), ...]) as server:`` then point a client at
    ``server.endpoint``; ``server.requests`` lists what arrived, in order."""

    def __init__(
        self,
        script: list[Reply] | Callable[[Recorded], Reply],
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._script = script
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        self._httpd = _QuietServer(("127.0.0.1", 0), self._handler_class())
        self.scheme = "http"
        if tls is not None:
            self._httpd.socket = tls.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def endpoint(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def connections(self) -> set[int]:
        """Distinct client ports seen, i.e. TCP connections that carried a request."""
        return {request.client_port for request in self.requests}

    def client(self, **kwargs: Any) -> KmsClient:
        """A signed client for this server with fast, recorded retries."""
        options: dict[str, Any] = {
            "region_name": "us-east-1",
            "aws_access_key_id": "AKIDEXAMPLE",
            "aws_secret_access_key": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
            "retry_policy": RetryPolicy(max_attempts=3, sleep=lambda _: None),
            "timeout": (2.0, 5.0),
        }
        options.update(kwargs)
        return KmsClient(self.endpoint, **options)

    def __enter__(self) -> ScriptedServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    def _next_reply(self, request: Recorded) -> Reply:
        with self._lock:
            self.requests.append(request)
            if callable(self._script):
                return self._script(request)
            index = min(len(self.requests), len(self._script)) - 1
            return self._script[index]

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                recorded = Recorded("POST", self.path, self.headers, body, self.client_address[1])
                reply = server._next_reply(recorded)
                if reply.delay:
                    time.sleep(reply.delay)
                if reply.hang_up:
                    self.close_connection = True
                    return
                payload = reply.payload()
                self.send_response(reply.status)
                self.send_header("Content-Type", "application/x-amz-json-1.1")
                self.send_header("Content-Length", str(len(payload)))
                self.send_header("x-amzn-RequestId", f"req-{len(server.requests)}")
                for name, value in reply.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(payload)
                self.wfile.flush()
                if reply.close_after:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


# --- self-tests of the helper ----------------------------------------------------------------
def test_scripted_server_answers_in_order_and_repeats_the_last_reply() -> None:
    script = [Reply(body={"n": 1}), Reply(status=500, body={"__type": "X"})]
    with ScriptedServer(script) as server:
        answers = []
        for _ in range(3):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
            connection.request("POST", "/", body=b"{}")
            response = connection.getresponse()
            answers.append((response.status, json.loads(response.read())))
            connection.close()
    assert answers == [(200, {"n": 1}), (500, {"__type": "X"}), (500, {"__type": "X"})]
    assert len(server.requests) == 3
    assert len(server.connections) == 3


def test_scripted_server_keeps_connections_alive() -> None:
    with ScriptedServer([Reply()]) as server:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
        for _ in range(3):
            connection.request("POST", "/", body=b"{}")
            connection.getresponse().read()
        connection.close()
    assert len(server.requests) == 3
    assert len(server.connections) == 1
