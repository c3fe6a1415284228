"""Client-side encryption throughput of :mod:`clients.s3_encryption`, and the physical limit.

Each object size runs in a fresh child process (``python -m bench.cse ...``) so that its
peak RSS (``VmHWM``, read by the child as it finishes) is the peak of that transfer alone.
Two sinks:

* ``s3``: a real local S3 (moto's server), boto3 client, ``upload_fileobj`` (multipart,
  8 MiB parts) then ``get_object`` read to the end: what a user sees end to end;
* ``null``: an S3 stand-in that drops every body: the encryption pipeline alone (KMS
  GenerateDataKey, AES-GCM streaming, part slicing), which is what compares with
  ``openssl speed``.

Plaintext comes from a stream that repeats one random 8 MiB block, so producing it costs a
memcpy and the measurement never holds the object in memory.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

MIB = 1024 * 1024
GIB = 1024 * MIB
BLOCK = 8 * MIB
BUCKET = "bench-cse"


class RepeatingStream(io.RawIOBase):
    """``size`` bytes of a repeated random block, readable and seekable like a file."""

    def __init__(self, size: int, block: bytes) -> None:
        self._size = size
        self._block = block
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._position

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: self._size}[whence]
        self._position = max(0, min(self._size, base + offset))
        return self._position

    def read(self, size: int = -1) -> bytes:
        remaining = self._size - self._position
        wanted = remaining if size is None or size < 0 else min(size, remaining)
        if wanted == len(self._block) and self._position % len(self._block) == 0:
            # The client reads whole parts of the block's size: hand out the block itself, so
            # that producing plaintext costs nothing and only the client's work is measured.
            self._position += wanted
            return self._block
        pieces = []
        while wanted > 0:
            offset = self._position % len(self._block)
            piece = self._block[offset : offset + wanted]
            pieces.append(piece)
            wanted -= len(piece)
            self._position += len(piece)
        return b"".join(pieces)


class NullS3:
    """The S3 calls the encrypting client makes on upload, answering without storing."""

    def __init__(self) -> None:
        self.bytes_received = 0

    def _take(self, body: Any) -> None:
        self.bytes_received += len(body)

    def put_object(self, *, Body: bytes, **_: Any) -> dict[str, Any]:
        self._take(Body)
        return {"ETag": '"null"'}

    def create_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {"UploadId": "null"}

    def upload_part(self, *, Body: bytes, PartNumber: int, **_: Any) -> dict[str, Any]:
        self._take(Body)
        return {"ETag": f'"{PartNumber}"'}

    def complete_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}

    def abort_multipart_upload(self, **_: Any) -> dict[str, Any]:
        return {}


@dataclass(frozen=True)
class CseResult:
    """One object size through one sink."""

    sink: str
    size_bytes: int
    put_seconds: float
    get_seconds: float | None
    peak_rss_kib: int

    @property
    def put_mb_per_s(self) -> float:
        return self.size_bytes / self.put_seconds / 1e6

    @property
    def get_mb_per_s(self) -> float | None:
        if self.get_seconds is None:
            return None
        return self.size_bytes / self.get_seconds / 1e6


def _transfer(kms_endpoint: str, key_id: str, s3_endpoint: str | None, size: int) -> dict[str, Any]:
    """Run in the child: one upload (and, with a real S3, one download) of ``size`` bytes."""
    from bench.systems import BENCH_CREDENTIALS
    from clients.kms import KmsClient
    from clients.s3_encryption import EncryptingS3Client, KmsKeyring

    credentials: dict[str, Any] = {
        "region_name": "us-east-1",
        "aws_access_key_id": BENCH_CREDENTIALS.access_key_id,
        "aws_secret_access_key": BENCH_CREDENTIALS.secret_access_key,
    }
    kms = KmsClient(kms_endpoint, **credentials)
    s3: Any
    if s3_endpoint is None:
        s3 = NullS3()
    else:
        import boto3

        s3 = boto3.client("s3", endpoint_url=s3_endpoint, **credentials)
        s3.create_bucket(Bucket=BUCKET)
    client = EncryptingS3Client(s3, KmsKeyring(kms, key_id))
    stream = RepeatingStream(size, os.urandom(BLOCK))
    object_key = f"object-{size}"
    started = time.perf_counter()
    client.upload_fileobj(stream, BUCKET, object_key)  # type: ignore[arg-type]
    put_seconds = time.perf_counter() - started
    get_seconds = None
    if s3_endpoint is not None:
        started = time.perf_counter()
        body = client.get_object(Bucket=BUCKET, Key=object_key)["Body"]
        received = 0
        while chunk := body.read(MIB):
            received += len(chunk)
        body.close()
        get_seconds = time.perf_counter() - started
        if received != size:
            raise RuntimeError(f"downloaded {received} bytes of {size}")
        s3.delete_object(Bucket=BUCKET, Key=object_key)
    return {"put_seconds": put_seconds, "get_seconds": get_seconds}


#: glibc keeps freed 8 MiB blocks instead of unmapping them (and faulting fresh pages in for
#: the next part). Only for the diagnostic row that shows what the allocator costs.
MALLOC_TUNED_ENV = {"MALLOC_MMAP_THRESHOLD_": str(64 * MIB), "MALLOC_TRIM_THRESHOLD_": str(GIB)}


def measure(
    kms_endpoint: str,
    key_id: str,
    s3_endpoint: str | None,
    size: int,
    timeout: float = 300,
    extra_env: dict[str, str] | None = None,
) -> CseResult:
    """Run one transfer in a fresh child process, which reports its own peak RSS.

    Raises RuntimeError if the child fails or exceeds ``timeout``.
    """
    command = [
        sys.executable,
        "-m",
        "bench.cse",
        "--kms",
        kms_endpoint,
        "--key-id",
        key_id,
        "--size",
        str(size),
    ]
    if s3_endpoint is not None:
        command += ["--s3", s3_endpoint]
    env = {**os.environ, **(extra_env or {})}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise RuntimeError(f"CSE transfer of {size} bytes took over {timeout:.0f}s") from None
    if process.returncode != 0:
        raise RuntimeError(f"CSE child failed: {stderr.decode(errors='replace')[-2000:]}")
    data = json.loads(stdout)
    sink = "s3" if s3_endpoint is not None else "null"
    return CseResult(
        sink=sink + ("+malloc" if extra_env else ""),
        size_bytes=size,
        put_seconds=data["put_seconds"],
        get_seconds=data["get_seconds"],
        peak_rss_kib=data["peak_rss_kib"],
    )


def _peak_rss_kib() -> int:
    """This process's high-water RSS (``VmHWM``) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def openssl_speed_bytes_per_second(seconds: int = 2) -> float | None:
    """``openssl speed -evp aes-256-gcm`` on one core, 16 KiB blocks; None without openssl."""
    try:
        completed = subprocess.run(
            ["openssl", "speed", "-mr", "-seconds", str(seconds), "-bytes", "16384", "-evp",
             "aes-256-gcm"],
            capture_output=True,
            text=True,
            timeout=seconds * 10 + 10,
            check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return parse_openssl_speed(completed.stdout + completed.stderr)


def parse_openssl_speed(output: str) -> float | None:
    """Bytes per second from ``openssl speed -mr`` output (the ``+F:`` line's last rate)."""
    match = re.search(r"^\+F:\d+:[^:]+:(.+)$", output, re.MULTILINE)
    if match is None:
        return None
    return float(match.group(1).split(":")[-1])


def main(argv: list[str] | None = None) -> int:
    """Child entry point: one transfer, JSON on stdout."""
    parser = argparse.ArgumentParser(description="one CSE transfer (used by make bench)")
    parser.add_argument("--kms", required=True)
    parser.add_argument("--key-id", required=True)
    parser.add_argument("--s3", default=None)
    parser.add_argument("--size", type=int, required=True)
    args = parser.parse_args(argv)
    result = _transfer(args.kms, args.key_id, args.s3, args.size)
    result["peak_rss_kib"] = _peak_rss_kib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
