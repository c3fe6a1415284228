"""Helpers for the wire, auth, CLI and state tests: raw HTTP calls, signed raw requests,
boto3 clients per account, and starting ``mock-kms serve`` without waiting for health.

Every process started here is stopped by its PID.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock
from urllib.parse import urlsplit

import boto3
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from botocore.credentials import Credentials

from tests.support.server import RunningServer

#: A boto3 KMS client (boto3 ships no type stubs here).
KmsClient = Any

CONTENT_TYPE = "application/x-amz-json-1.1"
REPO_ROOT = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class RawResponse:
    """One HTTP answer, read in full."""

    status: int
    headers: dict[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        """A header by case-insensitive name."""
        for key, value in self.headers.items():
            if key.lower() == name.lower():
                return value
        return None

    def json(self) -> Any:
        return json.loads(self.body)


def raw_request(
    port: int,
    body: bytes | str | Mapping[str, Any] = b"{}",
    *,
    target: str | None = None,
    method: str = "POST",
    path: str = "/",
    headers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> RawResponse:
    """Send one request over a fresh connection to 127.0.0.1:``port``; never raises on a
    non-2xx status. A mapping body is sent as JSON; ``target`` is the operation name."""
    if isinstance(body, Mapping):
        payload = json.dumps(body).encode()
    elif isinstance(body, str):
        payload = body.encode()
    else:
        payload = body
    sent = {"Content-Type": CONTENT_TYPE}
    if target is not None:
        sent["X-Amz-Target"] = f"TrentService.{target}"
    sent.update(headers or {})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=payload, headers=sent)
        response = connection.getresponse()
        data = response.read()
        return RawResponse(response.status, dict(response.getheaders()), data)
    finally:
        connection.close()


def checked_healthz(kms_server: RunningServer) -> dict[str, Any]:
    """``GET /healthz`` of a running server, checked: 200 with JSON, status ok, the server's
    default backend named and open, and the software backend open (always, for older keys).
    Returns the health document."""
    response = raw_request(kms_server.port, b"", method="GET", path="/healthz")
    assert response.status == 200
    assert response.header("Content-Type") == "application/json"
    health: dict[str, Any] = response.json()
    backend = kms_server.env.get("MOCK_KMS_BACKEND", "software")
    assert health["status"] == "ok"
    assert health["default_backend"] == backend
    assert health["backends"][backend]["ok"] is True
    assert health["backends"]["software"]["ok"] is True  # always open, for older keys
    return health


def signed_headers(
    endpoint_url: str,
    operation: str,
    body: bytes,
    *,
    access_key_id: str,
    secret_access_key: str,
    region: str = "us-east-1",
    session_token: str | None = None,
    signed_at: datetime | None = None,
) -> dict[str, str]:
    """Headers for a raw request signed by botocore's own SigV4 signer, optionally as if
    signed at ``signed_at`` (to test clock skew)."""
    request = AWSRequest(
        method="POST",
        url=endpoint_url,
        data=body,
        headers={"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"TrentService.{operation}"},
    )
    signer = SigV4Auth(Credentials(access_key_id, secret_access_key, session_token), "kms", region)
    if signed_at is None:
        signer.add_auth(request)
    else:
        naive_utc = signed_at.astimezone(UTC).replace(tzinfo=None)
        with mock.patch("botocore.auth.get_current_datetime", return_value=naive_utc):
            signer.add_auth(request)
    return {key: str(value) for key, value in request.headers.items()}


def new_account_id() -> str:
    """A random 12-digit account id: in open auth mode it is the caller's account, so tests
    sharing one server never see each other's keys."""
    return str(secrets.randbelow(9 * 10**11) + 10**11)


def kms_client(
    endpoint: str,
    *,
    access_key_id: str | None = None,
    secret_access_key: str = "mock-kms-test-secret",
    region: str = "us-east-1",
    session_token: str | None = None,
    pool: int = 32,
) -> KmsClient:
    """A boto3 KMS client with retries off and a connection pool big enough for the
    thread counts used here; a fresh account unless ``access_key_id`` is given."""
    return boto3.session.Session().client(
        "kms",
        endpoint_url=endpoint,
        region_name=region,
        aws_access_key_id=access_key_id or new_account_id(),
        aws_secret_access_key=secret_access_key,
        aws_session_token=session_token,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}, max_pool_connections=pool),
    )


def error_code(exc: Exception) -> str:
    """The AWS error name of a botocore ClientError."""
    return str(exc.response["Error"]["Code"])  # type: ignore[attr-defined]


def serve_command(*args: str) -> list[str]:
    """``mock-kms serve`` as run by the tests (the module, so the venv is not assumed)."""
    return [sys.executable, "-m", "kms_service.serving.cli", "serve", *args]


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without any ``MOCK_KMS_*`` variable, plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    env.update(extra or {})
    return env


def run_serve_expecting_failure(
    args: list[str], env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``mock-kms serve`` that must fail; kills it by PID (and fails) if it starts."""
    process = subprocess.Popen(
        serve_command(*args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(env),
        cwd=cwd,
        start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        raise AssertionError(f"mock-kms serve {args} did not exit (it should fail)") from None
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def child_pids(pid: int) -> list[int]:
    """The direct children of ``pid`` (gunicorn's workers of a master we started)."""
    children: list[int] = []
    task_dir = Path(f"/proc/{pid}/task")
    for task in task_dir.iterdir() if task_dir.exists() else []:
        text = (task / "children").read_text() if (task / "children").exists() else ""
        children.extend(int(part) for part in text.split())
    return children


def wait_until(predicate: Any, timeout: float = 20.0, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return bool(predicate())


def endpoint_port(endpoint: str) -> int:
    port = urlsplit(endpoint).port
    assert port is not None
    return port


def open_auth(account_id: str, region: str = "us-east-1") -> dict[str, str]:
    """An (unchecked in open mode) Authorization header that selects account and region."""
    return {
        "Authorization": (
            f"AWS4-HMAC-SHA256 Credential={account_id}/20260101/{region}/kms/aws4_request, "
            "SignedHeaders=host, Signature=" + "0" * 64
        )
    }


class Caller:
    """Raw calls to the session server as one fresh account."""

    def __init__(self, port: int, account_id: str | None = None, region: str = "us-east-1") -> None:
        self.port = port
        self.account_id = account_id or new_account_id()
        self.region = region

    def call(
        self, operation: str | None, body: Any = b"{}", *, path: str = "/", **kwargs: Any
    ) -> RawResponse:
        headers = {**open_auth(self.account_id, self.region), **kwargs.pop("headers", {})}
        return raw_request(self.port, body, target=operation, path=path, headers=headers, **kwargs)

    def ok(self, operation: str, body: Any = b"{}") -> dict[str, Any]:
        response = self.call(operation, body)
        assert response.status == 200, response.body
        return response.json() if response.body else {}

    def create_key(self) -> str:
        return str(self.ok("CreateKey")["KeyMetadata"]["KeyId"])


def assert_kms_error(response: RawResponse, code: str, status: int = 400) -> dict[str, Any]:
    """An AWS-shaped error: status, JSON body with ``__type``, matching X-Amzn-ErrorType,
    the JSON 1.1 content type, a request id, and no stack trace anywhere."""
    assert response.status == status, response.body
    assert response.header("Content-Type") == CONTENT_TYPE
    assert response.header("X-Amzn-ErrorType") == code
    assert response.header("x-amzn-RequestId")
    assert b"Traceback" not in response.body
    assert b"<html" not in response.body.lower()
    body = response.json()
    assert body["__type"] == code
    assert set(body) <= {"__type", "message"}
    return dict(body)


class LogWatch:
    """The part of a server log written since this object was made."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.offset = log_path.stat().st_size if log_path.exists() else 0

    def new_text(self) -> str:
        if not self.log_path.exists():
            return ""
        with self.log_path.open("rb") as stream:
            stream.seek(self.offset)
            return stream.read().decode(errors="replace")

    def assert_no_unexpected_errors(self) -> None:
        """No request of this module reached the catch-all (``KMSInternalException``)."""
        text = self.new_text()
        assert "unexpected error" not in text, text[-4000:]
        assert "Traceback" not in text, text[-4000:]
