"""The AWS CLI (``aws s3`` and ``aws s3api``) against ``mock-kms serve --tls``, verifying the
generated certificate with ``--ca-bundle``: multipart uploads in each mode, ranged parallel
downloads, SSE-C to SSE-KMS re-encryption by copy, listing and cleanup."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clients.sse import CustomerKey
from tests.support.s3 import aws_cli
from tests.support.server import RunningServer, running_server

SIZE = 20 * 1024 * 1024 + 12345  # above the CLI's 8 MiB multipart threshold


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("s3cli") / "data", extra_args=["--tls"]) as running:
        yield running


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cli-files") / "source.bin"
    path.write_bytes(os.urandom(SIZE))
    return path


def head(server: RunningServer, key: str, *extra: str) -> dict[str, object]:
    output = aws_cli(server, "s3api", "head-object", "--bucket", "cli", "--key", key, *extra)
    result: dict[str, object] = json.loads(output.stdout)
    return result


def test_cli_round_trips(server: RunningServer, source: Path, tmp_path: Path) -> None:
    aws_cli(server, "s3", "mb", "s3://cli")
    aws_cli(server, "s3", "cp", str(source), "s3://cli/default.bin")
    aws_cli(server, "s3", "cp", str(source), "s3://cli/kms.bin", "--sse", "aws:kms")
    assert head(server, "default.bin")["ServerSideEncryption"] == "AES256"
    kms_head = head(server, "kms.bin")
    assert kms_head["ServerSideEncryption"] == "aws:kms"
    assert str(kms_head["SSEKMSKeyId"]).startswith("arn:aws:kms:us-east-1:")
    assert str(kms_head["ETag"]).strip('"').endswith("-3")  # 8 MiB parts
    for key in ("default.bin", "kms.bin"):
        target = tmp_path / key
        aws_cli(server, "s3", "cp", f"s3://cli/{key}", str(target))
        assert target.read_bytes() == source.read_bytes()


def test_cli_sse_c_and_reencryption(server: RunningServer, source: Path, tmp_path: Path) -> None:
    aws_cli(server, "s3", "mb", "s3://cli-c")
    key = CustomerKey.generate()
    key_file = tmp_path / "customer.key"
    key.save(key_file)
    aws_cli(server, "s3", "cp", str(source), "s3://cli-c/c.bin", *key.cli_args(key_file))
    without = aws_cli(server, "s3", "cp", "s3://cli-c/c.bin", str(tmp_path / "x"), check=False)
    assert without.returncode != 0
    assert "400" in without.stderr
    wrong_file = tmp_path / "wrong.key"
    CustomerKey.generate().save(wrong_file)
    wrong = aws_cli(
        server, "s3", "cp", "s3://cli-c/c.bin", str(tmp_path / "y"), "--sse-c", "AES256",
        "--sse-c-key", f"fileb://{wrong_file}", check=False,
    )  # fmt: skip
    assert wrong.returncode != 0 and "403" in wrong.stderr
    target = tmp_path / "c.bin"
    aws_cli(server, "s3", "cp", "s3://cli-c/c.bin", str(target), *key.cli_args(key_file))
    assert target.read_bytes() == source.read_bytes()
    # SSE-C -> SSE-KMS, server-side.
    aws_cli(
        server, "s3", "cp", "s3://cli-c/c.bin", "s3://cli-c/kms.bin",
        *key.cli_args(key_file, copy_source=True), "--sse", "aws:kms",
    )  # fmt: skip
    reencrypted = tmp_path / "kms.bin"
    aws_cli(server, "s3", "cp", "s3://cli-c/kms.bin", str(reencrypted))
    assert reencrypted.read_bytes() == source.read_bytes()
    listing = aws_cli(server, "s3", "ls", "s3://cli-c/").stdout
    assert "c.bin" in listing and "kms.bin" in listing
    aws_cli(server, "s3", "rm", "s3://cli-c/", "--recursive")
    aws_cli(server, "s3", "rb", "s3://cli-c")
    assert "cli-c" not in aws_cli(server, "s3", "ls").stdout
