"""Helpers for the S3 integration tests: clients for a running server, the AWS CLI, worker
processes and their memory, and scanning the data directory for secrets."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from tests.support.server import RunningServer

CREDENTIALS = {"aws_access_key_id": "AKIDS3TEST", "aws_secret_access_key": "s3-test-secret"}
REGION = "us-east-1"
AWS_CLI = Path(sys.executable).with_name("aws")


def certificate(server: RunningServer) -> Path:
    """The self-signed certificate ``--tls`` generated for ``server``."""
    return server.data_dir / "tls" / "cert.pem"


def verify_for(server: RunningServer) -> bool | str:
    return str(certificate(server)) if server.scheme == "https" else True


def s3_client(server: RunningServer, **credentials: str) -> Any:
    """boto3 S3 for ``server``: path-style, retries off (errors surface at once), TLS verified
    against the server's generated certificate."""
    return boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        verify=verify_for(server),
        config=Config(
            retries={"max_attempts": 1, "mode": "standard"}, s3={"addressing_style": "path"}
        ),
        **{**CREDENTIALS, **credentials},
    )


def kms_client(server: RunningServer, **credentials: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=server.endpoint,
        region_name=REGION,
        verify=verify_for(server),
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **{**CREDENTIALS, **credentials},
    )


def aws_cli(
    server: RunningServer, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """Run ``aws <args>`` against ``server`` (with its CA bundle over HTTPS)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=CREDENTIALS["aws_access_key_id"],
        AWS_SECRET_ACCESS_KEY=CREDENTIALS["aws_secret_access_key"],
        AWS_DEFAULT_REGION=REGION,
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    command = [str(AWS_CLI), *args, "--endpoint-url", server.endpoint]
    if server.scheme == "https":
        command += ["--ca-bundle", str(certificate(server))]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"aws {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    return result


def worker_pids(server: RunningServer) -> list[int]:
    """The gunicorn workers: children of the server process."""
    children = Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split()
    return [int(pid) for pid in children]


def peak_rss_kib(pid: int) -> int:
    """``VmHWM`` (peak resident set) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmHWM for {pid}")


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


def occurrences(root: Path, needles: Iterable[bytes]) -> dict[str, list[str]]:
    """Which of ``needles`` appear in which files under ``root`` (read in full; the test data
    directories are small). Empty when none is found."""
    wanted = [n for n in needles if n]
    found: dict[str, list[str]] = {}
    for path in files_under(root):
        data = path.read_bytes()
        for needle in wanted:
            if needle in data:
                found.setdefault(str(path.relative_to(root)), []).append(needle[:16].hex())
    return found


def error_code(error: Any) -> tuple[int, str, str]:
    """``(status, code, message)`` of a botocore ClientError."""
    response = error.response
    return (
        int(response["ResponseMetadata"]["HTTPStatusCode"]),
        str(response["Error"]["Code"]),
        str(response["Error"].get("Message", "")),
    )


def fails(call: Any, **kwargs: Any) -> tuple[int, str, str]:
    """``(status, code, message)`` of the ClientError that ``call(**kwargs)`` must raise."""
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    return error_code(caught.value)
