"""Crash safety: ``kill -9`` of the whole server during writes leaves each object either as it
was or as one complete new version, never torn, and the server starts again on the same data
directory."""

from __future__ import annotations

import hashlib
import http.client
import os
import signal
import threading
import time
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.support.s3 import s3_client, worker_pids
from tests.support.server import RunningServer, start_server

MIB = 1024 * 1024


def kill_all(server: RunningServer) -> None:
    """SIGKILL the workers and the master, by PID: no cleanup code gets to run."""
    for pid in worker_pids(server):
        os.kill(pid, signal.SIGKILL)
    os.kill(server.pid, signal.SIGKILL)
    server.process.wait(timeout=10)


def tmp_bytes(data_dir: Path) -> int:
    return sum(p.stat().st_size for p in (data_dir / "s3" / "tmp").glob("*.tmp"))


def test_kill_during_a_large_put(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    server = start_server(data_dir, workers=1)
    old = os.urandom(MIB)
    connections: list[http.client.HTTPConnection] = []
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="crash")
        s3.put_object(Bucket="crash", Key="doc", Body=old)
        for key in ("doc", "fresh"):
            connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
            connection.putrequest("PUT", f"/crash/{key}")
            connection.putheader("Content-Length", str(64 * MIB))
            connection.endheaders()
            connection.send(os.urandom(16 * MIB))
            connections.append(connection)
        deadline = time.monotonic() + 30
        while tmp_bytes(data_dir) < 16 * MIB and time.monotonic() < deadline:
            time.sleep(0.05)
        assert tmp_bytes(data_dir) >= 16 * MIB, "the server never started writing"
    finally:
        kill_all(server)
    for connection in connections:
        connection.close()

    restarted = start_server(data_dir, workers=1)
    try:
        s3 = s3_client(restarted)
        assert s3.get_object(Bucket="crash", Key="doc")["Body"].read() == old
        with pytest.raises(ClientError) as missing:
            s3.head_object(Bucket="crash", Key="fresh")
        assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
        s3.put_object(Bucket="crash", Key="doc", Body=b"after restart")
        assert s3.get_object(Bucket="crash", Key="doc")["Body"].read() == b"after restart"
    finally:
        restarted.stop()


def test_kill_during_continuous_overwrites(tmp_path: Path) -> None:
    """Overwrites in a loop, killed at an arbitrary moment (often between the file rename and
    the metadata commit): what is read afterwards is one of the versions sent, in full."""
    data_dir = tmp_path / "data"
    server = start_server(data_dir, workers=2)
    versions: dict[str, int] = {}
    stop = threading.Event()
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="churn")
        first = os.urandom(2 * MIB)
        s3.put_object(Bucket="churn", Key="doc", Body=first)
        versions[hashlib.sha256(first).hexdigest()] = len(first)

        def churn() -> None:
            client = s3_client(server)
            while not stop.is_set():
                body = os.urandom(2 * MIB + len(versions))
                versions[hashlib.sha256(body).hexdigest()] = len(body)
                try:
                    client.put_object(Bucket="churn", Key="doc", Body=body)
                except Exception:
                    return  # the server died under us

        writers = [threading.Thread(target=churn) for _ in range(3)]
        for writer in writers:
            writer.start()
        time.sleep(1.5)
    finally:
        kill_all(server)
        stop.set()
    for writer in writers:
        writer.join(timeout=30)
    assert len(versions) > 3, "too few writes happened before the kill"

    restarted = start_server(data_dir, workers=1)
    try:
        body = s3_client(restarted).get_object(Bucket="churn", Key="doc")["Body"].read()
        assert hashlib.sha256(body).hexdigest() in versions
    finally:
        restarted.stop()
