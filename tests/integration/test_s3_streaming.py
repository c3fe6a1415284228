"""Large objects stream through the server with bounded memory, and S3 requests waiting on
the KMS never starve the KMS of threads."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from clients.sse import sse_kms
from tests.support.s3 import peak_rss_kib, s3_client, worker_pids
from tests.support.server import RunningServer, running_server, start_server

MIB = 1024 * 1024
OBJECT_SIZE = 256 * MIB
#: What the server may grow by while moving the object: a small fraction of its size.
GROWTH_LIMIT_KIB = 64 * 1024


def write_file(path: Path, size: int) -> str:
    """A file of pseudo-random bytes, written in pieces; returns its SHA-256."""
    digest = hashlib.sha256()
    block = os.urandom(MIB)
    with path.open("wb") as handle:
        for index in range(size // MIB):
            piece = index.to_bytes(8, "big") + block[8:]
            digest.update(piece)
            handle.write(piece)
    return digest.hexdigest()


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while piece := handle.read(MIB):
            digest.update(piece)
    return digest.hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    # One worker, so every request lands in the process whose memory is measured.
    with running_server(tmp_path_factory.mktemp("s3stream") / "data", workers=1) as running:
        yield running


def test_multipart_object_streams_with_bounded_memory(
    server: RunningServer, tmp_path: Path
) -> None:
    s3 = s3_client(server)
    s3.create_bucket(Bucket="stream")
    (worker,) = worker_pids(server)
    s3.put_object(Bucket="stream", Key="warm-up", Body=os.urandom(MIB), **sse_kms())
    assert len(s3.get_object(Bucket="stream", Key="warm-up")["Body"].read()) == MIB
    baseline = peak_rss_kib(worker)

    source = tmp_path / "big.bin"
    expected = write_file(source, OBJECT_SIZE)
    transfer = TransferConfig(multipart_chunksize=16 * MIB, max_concurrency=4)
    s3.upload_file(str(source), "stream", "big", ExtraArgs=sse_kms(), Config=transfer)
    head = s3.head_object(Bucket="stream", Key="big")
    assert head["ContentLength"] == OBJECT_SIZE
    assert head["ETag"].strip('"').endswith("-16")

    # One GET of the whole object, read as it arrives...
    streamed = hashlib.sha256()
    body = s3.get_object(Bucket="stream", Key="big")["Body"]
    for piece in body.iter_chunks(MIB):
        streamed.update(piece)
    assert streamed.hexdigest() == expected
    # ...and the parallel ranged GETs of a managed download.
    target = tmp_path / "copy.bin"
    s3.download_file("stream", "big", str(target), Config=transfer)
    assert sha256_of(target) == expected

    peak = peak_rss_kib(worker)
    print(
        f"worker VmHWM: {baseline} KiB before, {peak} KiB after a {OBJECT_SIZE // MIB} MiB object"
    )
    assert peak - baseline < GROWTH_LIMIT_KIB, (baseline, peak)


def test_kms_calls_never_wait_for_s3_threads(tmp_path_factory: pytest.TempPathFactory) -> None:
    """More concurrent SSE-KMS requests than the server has threads: each one holds a thread
    while it calls the KMS, so the KMS must be served elsewhere (the per-worker loopback
    listener) or every call would stall until its timeout."""
    server = start_server(
        tmp_path_factory.mktemp("s3starve") / "data", workers=1, extra_args=["--threads", "2"]
    )
    try:
        s3 = s3_client(server)
        s3.create_bucket(Bucket="busy")

        def round_trip(index: int) -> bytes:
            client: Any = s3_client(server)
            key = f"object-{index}"
            client.put_object(Bucket="busy", Key=key, Body=b"x" * index, **sse_kms())
            result: bytes = client.get_object(Bucket="busy", Key=key)["Body"].read()
            return result

        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=12) as pool:
            results = list(pool.map(round_trip, range(1, 25)))
        elapsed = time.monotonic() - started
        assert results == [b"x" * i for i in range(1, 25)]
        assert elapsed < 20, f"took {elapsed:.1f}s: KMS calls waited for S3 threads"
    finally:
        server.stop()
