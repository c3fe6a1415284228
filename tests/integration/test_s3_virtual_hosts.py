"""Virtual-hosted-style S3: boto3 against ``http://localhost:PORT`` and
``http://s3.localhost:PORT`` with ``addressing_style: virtual`` (the bucket in the Host
header), raw requests to ``BUCKET.s3.<anything>`` hosts, and path-style still working on the
same server.

RFC 6761 reserves ``*.localhost`` for loopback and systemd-resolved and browsers resolve it,
but this machine's resolver (glibc, files + dns) does not: :func:`localhost_names_resolve`
resolves those names to 127.0.0.1 for this process, which is all boto3 needs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.s3 import s3_client
from tests.support.server import RunningServer, running_server
from tests.support.wire import raw_request

CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("vhost") / "data") as running:
        yield running


@pytest.fixture
def localhost_names_resolve(monkeypatch: pytest.MonkeyPatch) -> None:
    real = socket.getaddrinfo

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(host, str) and host.endswith(".localhost"):
            host = "127.0.0.1"
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)


def virtual_client(endpoint: str) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "virtual"}, retries={"max_attempts": 1}),
        **CREDENTIALS,
    )


@pytest.mark.usefixtures("localhost_names_resolve")
@pytest.mark.parametrize("host", ["localhost", "s3.localhost"])
def test_boto3_virtual_hosted_round_trip(server: RunningServer, host: str) -> None:
    s3 = virtual_client(f"http://{host}:{server.port}")
    bucket = f"vhost-{host.replace('.', '-')}"
    seen: list[tuple[str, str]] = []

    def record(request: Any, **_: Any) -> None:
        parts = urlsplit(request.url)
        seen.append((parts.netloc, parts.path))

    s3.meta.events.register("before-send.s3.*", record)
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="dir/a b.txt", Body=b"virtual", ServerSideEncryption="aws:kms")
    s3.put_object(Bucket=bucket, Key="metrics", Body=b"not the metrics")
    s3.put_object(Bucket=bucket, Key="healthz", Body=b"not the health check")
    # Sent virtual-hosted style: the bucket in the host name, never in the path.
    assert seen and all(netloc == f"{bucket}.{host}:{server.port}" for netloc, _ in seen)
    assert not any(path.startswith(f"/{bucket}") for _, path in seen)

    got = s3.get_object(Bucket=bucket, Key="dir/a b.txt")
    assert got["Body"].read() == b"virtual" and got["ServerSideEncryption"] == "aws:kms"
    # Keys that are also service paths (/metrics, /healthz) are the bucket's objects here.
    assert s3.get_object(Bucket=bucket, Key="metrics")["Body"].read() == b"not the metrics"
    assert s3.get_object(Bucket=bucket, Key="healthz")["Body"].read() == b"not the health check"
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="dir/")
    assert [o["Key"] for o in listed["Contents"]] == ["dir/a b.txt"]
    with pytest.raises(ClientError) as missing:
        s3.get_object(Bucket=bucket, Key="absent")
    assert missing.value.response["Error"]["Code"] == "NoSuchKey"

    # The same objects, path-style, on the same server.
    path_style = s3_client(server)
    assert path_style.get_object(Bucket=bucket, Key="dir/a b.txt")["Body"].read() == b"virtual"
    assert bucket in [b["Name"] for b in s3.list_buckets()["Buckets"]]


@pytest.mark.parametrize(
    "host",
    ["raw-vhost.s3.amazonaws.com", "raw-vhost.s3.eu-west-1.amazonaws.com", "raw-vhost.s3.test:9"],
)
def test_bucket_dot_s3_hosts(server: RunningServer, host: str) -> None:
    s3_client(server).create_bucket(Bucket="raw-vhost")
    put = raw_request(server.port, b"hello", method="PUT", path="/greeting", headers={"Host": host})
    assert put.status == 200, put.body
    got = raw_request(server.port, b"", method="GET", path="/greeting", headers={"Host": host})
    assert (got.status, got.body) == (200, b"hello")
    # Path style with an S3-looking host that names no bucket.
    path = raw_request(
        server.port, b"", method="GET", path="/raw-vhost/greeting",
        headers={"Host": "s3.amazonaws.com"},
    )  # fmt: skip
    assert (path.status, path.body) == (200, b"hello")


def test_health_and_ip_hosts_stay_path_style(server: RunningServer) -> None:
    for host in ("localhost", f"127.0.0.1:{server.port}", "[::1]:8080"):
        health = raw_request(
            server.port, b"", method="GET", path="/healthz", headers={"Host": host}
        )
        assert health.status == 200 and health.json()["status"] == "ok"
