"""The console's safety rules against a real server, over plain HTTP (no browser needed):
state changes without the CSRF token are refused; a non-loopback bind serves no console
unless ``MOCK_KMS_CONSOLE=on``, and then only after a sign-in (token or, in ``sigv4`` mode, an
identity's access key and secret); a foreign ``Host`` is refused on a console without
sign-in; a bucket named ``console`` stays reachable through S3.

The non-loopback bind uses this machine's own non-loopback address (first of ``hostname -I``)
when it has one, else ``0.0.0.0`` reached through 127.0.0.1, which is a non-loopback bind
all the same (docs/console.md).
"""

from __future__ import annotations

import base64
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config

from kms_service.console.safety import (
    NO_SIGN_IN,
    SIGV4_SIGN_IN,
    TOKEN_SIGN_IN,
    decide_access,
    is_local_host_header,
    is_loopback_host,
)
from kms_service.settings import Settings
from tests.support.server import RunningServer, free_port, running_server

CREDENTIALS = {"aws_access_key_id": "AKIDCONSOLESAFE", "aws_secret_access_key": "safe-secret"}
ACCOUNT = "111122223333"
TOKEN = "console-test-token-" + "x" * 16


def _kms(endpoint: str, **credentials: str) -> Any:
    return boto3.client(
        "kms",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(retries={"total_max_attempts": 1, "mode": "standard"}),
        **(credentials or CREDENTIALS),
    )


def _csrf(html: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert match, "no CSRF token on the page"
    return match.group(1)


# --- the decision function ------------------------------------------------------------------
@pytest.mark.parametrize(
    ("bind", "console", "auth", "token", "enabled", "sign_in"),
    [
        ("127.0.0.1:8080", "auto", "open", None, True, NO_SIGN_IN),
        ("127.0.0.2:8080", "auto", "open", None, True, NO_SIGN_IN),
        ("[::1]:8080", "auto", "open", None, True, NO_SIGN_IN),
        ("localhost:8080", "auto", "open", None, True, NO_SIGN_IN),
        ("127.0.0.1:8080", "off", "open", None, False, NO_SIGN_IN),
        ("127.0.0.1:8080", "auto", "open", TOKEN, True, TOKEN_SIGN_IN),
        ("0.0.0.0:8080", "auto", "open", None, False, NO_SIGN_IN),
        ("[::]:8080", "auto", "open", None, False, NO_SIGN_IN),
        ("192.0.2.10:8080", "auto", "open", None, False, NO_SIGN_IN),
        ("0.0.0.0:8080", "on", "open", None, True, TOKEN_SIGN_IN),
        ("0.0.0.0:8080", "true", "open", TOKEN, True, TOKEN_SIGN_IN),
        ("0.0.0.0:8080", "on", "sigv4", None, True, SIGV4_SIGN_IN),
        ("127.0.0.1:8080", "auto", "sigv4", None, True, SIGV4_SIGN_IN),
    ],
)
def test_decision(
    bind: str, console: str, auth: str, token: str | None, enabled: bool, sign_in: str
) -> None:
    settings = Settings(bind=bind, console=console, auth=auth, console_token=token)
    access = decide_access(settings)
    assert (access.enabled, access.sign_in) == (enabled, sign_in)


def test_loopback_and_host_header_rules() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1")
    assert not is_loopback_host("0.0.0.0") and not is_loopback_host("::")
    assert not is_loopback_host("no-such-host.invalid")
    assert is_local_host_header("127.0.0.1:8080") and is_local_host_header("[::1]:8080")
    assert is_local_host_header("localhost:8080")
    assert not is_local_host_header("evil.example:8080")
    assert not is_local_host_header("127.0.0.1.nip.io")
    assert not is_local_host_header(None)


def test_bad_console_setting_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "kms_service.serving.cli", "serve", "--console", "maybe",
         "--data-dir", str(tmp_path / "data"), "--bind", f"127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--console/MOCK_KMS_CONSOLE must be auto, on or off" in done.stderr


# --- a loopback server: CSRF, Host, routing --------------------------------------------------
@pytest.fixture(scope="module")
def loopback(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("console-safety") / "data") as server:
        yield server


def test_state_change_without_csrf_token_is_refused(loopback: RunningServer) -> None:
    kms = _kms(loopback.endpoint)
    key_id = kms.create_key(Description="csrf")["KeyMetadata"]["KeyId"]
    url = f"{loopback.endpoint}/console/keys/{ACCOUNT}/us-east-1/{key_id}/disable"
    browser = requests.Session()
    page = browser.get(f"{loopback.endpoint}/console/keys/{ACCOUNT}/us-east-1/{key_id}")
    assert page.status_code == 200
    token = _csrf(page.text)
    wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
    # Without a token, with a wrong one, and with the right one from another session.
    refused = [
        browser.post(url, data={"confirmed": "yes"}),
        browser.post(url, data={"confirmed": "yes", "csrf_token": wrong}),
        requests.post(url, data={"confirmed": "yes", "csrf_token": token}),
    ]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert all("CSRF" in r.text for r in refused)
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
    done = browser.post(url, data={"confirmed": "yes", "csrf_token": token})
    assert done.status_code == 200 and "DisableKey succeeded" in done.text
    assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Disabled"


def test_cookie_and_headers(loopback: RunningServer) -> None:
    response = requests.get(f"{loopback.endpoint}/console/keys")
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY"
    # KMS answers carry no console cookie: sessions exist only under /console.
    kms_answer = requests.post(
        loopback.endpoint,
        headers={"X-Amz-Target": "TrentService.ListKeys",
                 "Content-Type": "application/x-amz-json-1.1"},
        data="{}",
    )  # fmt: skip
    assert kms_answer.status_code == 200 and "Set-Cookie" not in kms_answer.headers


def test_foreign_host_header_is_refused_without_sign_in(loopback: RunningServer) -> None:
    response = requests.get(
        f"{loopback.endpoint}/console/keys", headers={"Host": "rebound.example:80"}
    )
    assert response.status_code == 403
    assert "Keys in" not in response.text


def test_a_bucket_named_console_stays_reachable(loopback: RunningServer) -> None:
    s3 = boto3.client(
        "s3",
        endpoint_url=loopback.endpoint,
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}),
        **CREDENTIALS,
    )
    s3.create_bucket(Bucket="console")
    s3.put_object(Bucket="console", Key="keys", Body=b"mine")
    assert s3.get_object(Bucket="console", Key="keys")["Body"].read() == b"mine"
    listed = s3.list_objects_v2(Bucket="console")["Contents"]
    assert [o["Key"] for o in listed] == ["keys"]
    # The same path unsigned, from a browser, is the console.
    assert "Keys in" in requests.get(f"{loopback.endpoint}/console/keys").text


def test_nothing_secret_is_rendered(loopback: RunningServer) -> None:
    kms = _kms(loopback.endpoint)
    key_id = kms.create_key()["KeyMetadata"]["KeyId"]
    plaintext = b"console-plaintext-" + uuid.uuid4().hex.encode()
    kms.encrypt(KeyId=key_id, Plaintext=plaintext, EncryptionContext={"ctx": "ctx-value-42"})
    data_key = kms.generate_data_key(KeyId=key_id, KeySpec="AES_256")["Plaintext"]
    time.sleep(0.8)  # the feed flushes every 0.25 s
    session = requests.Session()
    pages = [
        session.get(f"{loopback.endpoint}/console/requests").text,
        session.get(f"{loopback.endpoint}/console/requests/feed.json").text,
        session.get(f"{loopback.endpoint}/console/keys/{ACCOUNT}/us-east-1/{key_id}").text,
    ]
    ring = b"".join(p.read_bytes() for p in (loopback.data_dir / "console").glob("requests*"))
    for text in [*pages, ring.decode()]:
        assert "ctx-value-42" not in text
        assert plaintext.decode() not in text
        for encoded in (data_key.hex(), base64.b64encode(data_key).decode()):
            assert encoded not in text
    # Context keys are recorded, as in the audit log: the allow-list was applied, not nothing.
    assert b'"encryptionContextKeys":["ctx"]' in ring


# --- non-loopback binds ---------------------------------------------------------------------
def _non_loopback_address() -> tuple[str, str]:
    """(address to bind, address to reach it by): the machine's own first non-loopback IPv4
    address from ``hostname -I`` if there is one, else 0.0.0.0 reached through 127.0.0.1."""
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        out = subprocess.run(["hostname", "-I"], capture_output=True, text=True, timeout=5)
        for address in out.stdout.split():
            if ":" in address or address.startswith("127."):
                continue
            with socket.socket() as probe:
                try:
                    probe.bind((address, 0))
                except OSError:
                    continue
            return address, address
    return "0.0.0.0", "127.0.0.1"


@contextlib.contextmanager
def _server_on(
    tmp_path: Path, env: dict[str, str], extra: list[str] | None = None
) -> Iterator[tuple[str, subprocess.Popen[bytes], Path]]:
    """A real ``mock-kms serve`` on a non-loopback bind; yields (endpoint, process, log)."""
    bind_host, reach_host = _non_loopback_address()
    port = free_port()
    log_path = tmp_path / "server.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    full_env.update(env)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kms_service.serving.cli", "serve", "--bind",
             f"{bind_host}:{port}", "--data-dir", str(tmp_path / "data"), "--workers", "2",
             *(extra or [])],
            stdout=log, stderr=subprocess.STDOUT, env=full_env,
        )  # fmt: skip
    endpoint = f"http://{reach_host}:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert process.poll() is None, log_path.read_text()
            with contextlib.suppress(requests.RequestException):
                if requests.get(endpoint + "/healthz", timeout=2).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise AssertionError(f"not healthy:\n{log_path.read_text()}")
        time.sleep(0.5)  # both workers booted
        yield endpoint, process, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def test_non_loopback_bind_serves_no_console_by_default(tmp_path: Path) -> None:
    with _server_on(tmp_path, {}) as (endpoint, _, log_path):
        response = requests.get(f"{endpoint}/console/keys", allow_redirects=False)
        # Not the console: the path is S3's again (a bucket called "console" that is absent).
        assert response.status_code == 404 and "NoSuchBucket" in response.text
        assert "Keys in" not in response.text
        assert "web console is off" in log_path.read_text()


def test_non_loopback_bind_with_console_on_requires_the_printed_token(tmp_path: Path) -> None:
    with _server_on(tmp_path, {"MOCK_KMS_CONSOLE": "on"}) as (endpoint, _, log_path):
        match = re.search(r"console sign-in token: (\S+)", log_path.read_text())
        assert match, log_path.read_text()
        token = match.group(1)
        anonymous = requests.Session()
        first = anonymous.get(f"{endpoint}/console/keys", allow_redirects=False)
        assert first.status_code == 302 and "/console/sign-in" in first.headers["Location"]
        for path in ("/console/requests", "/console/requests/feed.json", "/console/s3"):
            assert anonymous.get(endpoint + path, allow_redirects=False).status_code == 302
        form = anonymous.get(f"{endpoint}/console/sign-in")
        assert form.status_code == 200 and token not in form.text
        csrf = _csrf(form.text)
        wrong = anonymous.post(
            f"{endpoint}/console/sign-in", data={"csrf_token": csrf, "token": token[:-2] + "zz"}
        )
        assert wrong.status_code == 403
        assert anonymous.get(f"{endpoint}/console/keys", allow_redirects=False).status_code == 302
        # A state change before signing in is refused too (CSRF first, then the sign-in).
        kms = _kms(endpoint)
        key_id = kms.create_key()["KeyMetadata"]["KeyId"]
        blocked = anonymous.post(
            f"{endpoint}/console/keys/{ACCOUNT}/us-east-1/{key_id}/disable",
            data={"csrf_token": csrf, "confirmed": "yes"},
            allow_redirects=False,
        )
        assert blocked.status_code == 302
        assert kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"] == "Enabled"
        signed = anonymous.post(
            f"{endpoint}/console/sign-in", data={"csrf_token": csrf, "token": token}
        )
        assert signed.status_code == 200 and "Keys in" in signed.text and key_id in signed.text
        assert token not in signed.text


def test_non_loopback_bind_with_a_set_token(tmp_path: Path) -> None:
    env = {"MOCK_KMS_CONSOLE": "on", "MOCK_KMS_CONSOLE_TOKEN": TOKEN}
    with _server_on(tmp_path, env) as (endpoint, _, log_path):
        assert TOKEN not in log_path.read_text()  # a token set by the operator is not printed
        session = requests.Session()
        csrf = _csrf(session.get(f"{endpoint}/console/sign-in").text)
        signed = session.post(f"{endpoint}/console/sign-in", data={"csrf_token": csrf,
                                                                   "token": TOKEN})  # fmt: skip
        assert "Keys in" in signed.text


def test_sigv4_mode_signs_in_with_an_identity(tmp_path: Path) -> None:
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[alice]\naws_access_key_id = AKIDALICE0000000001\n"
        "aws_secret_access_key = alice-secret-key\naws_account_id = 444455556666\n"
    )
    env = {
        "MOCK_KMS_CONSOLE": "on",
        "MOCK_KMS_AUTH": "sigv4",
        "MOCK_KMS_CREDENTIALS_FILE": str(credentials),
    }
    with _server_on(tmp_path, env) as (endpoint, _, log_path):
        assert "console sign-in token" not in log_path.read_text()
        session = requests.Session()
        form = session.get(f"{endpoint}/console/sign-in")
        assert 'name="access_key_id"' in form.text
        csrf = _csrf(form.text)
        wrong = session.post(
            f"{endpoint}/console/sign-in",
            data={"csrf_token": csrf, "access_key_id": "AKIDALICE0000000001",
                  "secret_access_key": "not-alice"},
        )  # fmt: skip
        assert wrong.status_code == 403
        signed = session.post(
            f"{endpoint}/console/sign-in",
            data={"csrf_token": csrf, "access_key_id": "AKIDALICE0000000001",
                  "secret_access_key": "alice-secret-key"},
        )  # fmt: skip
        assert signed.status_code == 200
        assert "arn:aws:iam::444455556666:user/alice" in signed.text
        assert "Keys in 444455556666" in signed.text
        assert "alice-secret-key" not in signed.text
        # Actions run as alice, and the audit feed says so.
        csrf = _csrf(signed.text)
        created = session.post(
            f"{endpoint}/console/keys/new",
            data={"csrf_token": csrf, "confirmed": "yes", "description": "alice's"},
        )
        assert "CreateKey succeeded" in created.text
        time.sleep(0.8)
        feed = session.get(f"{endpoint}/console/requests/feed.json?operation=CreateKey").json()
        assert feed["entries"][0]["principal"] == "arn:aws:iam::444455556666:user/alice"
