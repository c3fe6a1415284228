"""``mock-kms serve``: configuration from options and ``MOCK_KMS_*``, one-line failures with
exit status 2, ``/healthz``, and the root key (file or ``MOCK_KMS_ROOT_KEY``)."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.server import RunningServer, free_port, running_server
from tests.support.wire import (
    Caller,
    checked_healthz,
    child_pids,
    clean_env,
    kms_client,
    raw_request,
    run_serve_expecting_failure,
    serve_command,
    wait_until,
)

EXIT_CONFIGURATION = 2
GOOD_CREDENTIALS = "[p]\naws_access_key_id = AKIDP\naws_secret_access_key = s\n"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _corrupt_file(data_dir: Path, name: str, content: bytes) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / name).write_bytes(content)


# --- bad configuration: one line, exit status 2 ---------------------------------------------
BAD_CONFIGURATIONS: list[tuple[str, list[str], dict[str, str], str]] = [
    ("bind-no-port", ["--bind", "localhost"], {}, "--bind"),
    ("bind-port-too-big", ["--bind", "127.0.0.1:70000"], {}, "--bind"),
    ("bind-env", [], {"MOCK_KMS_BIND": "nowhere"}, "MOCK_KMS_BIND"),
    ("backend-unknown", ["--backend", "hsm"], {}, "--backend"),
    ("backend-env", [], {"MOCK_KMS_BACKEND": "cloud"}, "MOCK_KMS_BACKEND"),
    ("pkcs11-unconfigured", ["--backend", "pkcs11"], {}, "PKCS11_MODULE"),
    ("workers-zero", ["--workers", "0"], {}, "--workers"),
    ("workers-not-a-number", ["--workers", "many"], {}, "workers"),
    ("workers-env-zero", [], {"MOCK_KMS_WORKERS": "0"}, "--workers"),
    ("threads-zero", ["--threads", "0"], {}, "--threads"),
    ("region-bad", [], {"MOCK_KMS_REGION": "Mars"}, "MOCK_KMS_REGION"),
    ("region-option-bad", ["--region", "us_east_1"], {}, "us_east_1"),
    ("account-short", [], {"MOCK_KMS_ACCOUNT_ID": "1234"}, "MOCK_KMS_ACCOUNT_ID"),
    ("account-letters", [], {"MOCK_KMS_ACCOUNT_ID": "11112222333x"}, "12 digits"),
    ("auth-unknown", [], {"MOCK_KMS_AUTH": "kerberos"}, "MOCK_KMS_AUTH"),
    ("sigv4-without-credentials", [], {"MOCK_KMS_AUTH": "sigv4"}, "credentials file"),
    ("root-key-short", [], {"MOCK_KMS_ROOT_KEY": "c2hvcnQ="}, "MOCK_KMS_ROOT_KEY"),
    ("root-key-not-base64", [], {"MOCK_KMS_ROOT_KEY": "not a key!"}, "MOCK_KMS_ROOT_KEY"),
    ("clock-offset-bad", [], {"MOCK_KMS_CLOCK_OFFSET_SECONDS": "soon"}, "clock_offset"),
]


@pytest.mark.parametrize(
    ("args", "env", "mentions"),
    [case[1:] for case in BAD_CONFIGURATIONS],
    ids=[case[0] for case in BAD_CONFIGURATIONS],
)
def test_bad_configuration_fails_fast_in_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], mentions: str
) -> None:
    # Port 0 lets a wrongly accepted configuration start (and be stopped) without a clash.
    bind = [] if "--bind" in args or "MOCK_KMS_BIND" in env else ["--bind", "127.0.0.1:0"]
    result = run_serve_expecting_failure(
        ["--data-dir", str(tmp_path / "data"), *bind, *args], env=env
    )
    assert_one_line_failure(result, mentions)


def assert_one_line_failure(result: subprocess.CompletedProcess[str], mentions: str) -> None:
    """Exit status 2, nothing on stdout, exactly one line on stderr naming the problem."""
    assert result.returncode == EXIT_CONFIGURATION, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("mock-kms: error: ")
    assert mentions in lines[0]
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def _credentials_case(tmp_path: Path, text: str | None) -> dict[str, str]:
    path = tmp_path / "credentials"
    if text is not None:
        path.write_text(text)
    return {"MOCK_KMS_AUTH": "sigv4", "MOCK_KMS_CREDENTIALS_FILE": str(path)}


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        (None, "does not exist"),
        ("aws_access_key_id = A\n", "[profile] header"),
        ("[p]\naws_access_key_id = A\n", "aws_secret_access_key"),
        ("[p]\naws_secret_access_key = s\n", "aws_access_key_id"),
        (GOOD_CREDENTIALS + "aws_account_id = 12\n", "aws_account_id"),
        (GOOD_CREDENTIALS + "[q]\naws_access_key_id = AKIDP\naws_secret_access_key = t\n", "AKIDP"),
        ("", "no profiles"),
        ("[p]\n[p]\n", "appears twice"),
    ],
    ids=[
        "missing",
        "no-header",
        "no-secret",
        "no-access-key",
        "bad-account",
        "duplicate-key",
        "empty",
        "duplicate-profile",
    ],
)
def test_bad_credentials_file(tmp_path: Path, text: str | None, mentions: str) -> None:
    env = _credentials_case(tmp_path, text)
    result = run_serve_expecting_failure(
        ["--data-dir", str(tmp_path / "data"), "--bind", "127.0.0.1:0"], env=env
    )
    assert_one_line_failure(result, mentions)
    assert "aws_secret_access_key = s" not in result.stderr


def test_secret_is_not_quoted_when_the_credentials_file_is_malformed(tmp_path: Path) -> None:
    env = _credentials_case(
        tmp_path, "[p]\naws_access_key_id = A\naws_secret_access_key = TOPSECRET\n  junk line\n"
    )
    result = run_serve_expecting_failure(
        ["--data-dir", str(tmp_path / "data"), "--bind", "127.0.0.1:0"], env=env
    )
    assert result.returncode == EXIT_CONFIGURATION
    assert "TOPSECRET" not in result.stderr


def test_data_dir_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = _write(tmp_path / "file", "x")
    result = run_serve_expecting_failure(["--data-dir", str(not_a_dir), "--bind", "127.0.0.1:0"])
    assert_one_line_failure(result, "not a directory")


def test_data_dir_env_that_is_a_file(tmp_path: Path) -> None:
    not_a_dir = _write(tmp_path / "file", "x")
    result = run_serve_expecting_failure(
        ["--bind", "127.0.0.1:0"], env={"MOCK_KMS_DATA_DIR": str(not_a_dir)}
    )
    assert_one_line_failure(result, str(not_a_dir))


@pytest.mark.parametrize(
    ("name", "content", "mentions"),
    [
        ("root.key", b"not base64 at all\n", "root.key"),
        ("root.key", base64.b64encode(b"k" * 16) + b"\n", "32 bytes"),
        ("mock-kms.sqlite3", b"this is not a database" * 100, "mock-kms.sqlite3"),
        ("software-keystore.sqlite3", b"nor is this" * 400, "software-keystore.sqlite3"),
    ],
    ids=["root-key-garbage", "root-key-short", "database-garbage", "keystore-garbage"],
)
def test_corrupt_files_in_the_data_dir(
    tmp_path: Path, name: str, content: bytes, mentions: str
) -> None:
    data_dir = tmp_path / "data"
    _corrupt_file(data_dir, name, content)
    result = run_serve_expecting_failure(["--data-dir", str(data_dir), "--bind", "127.0.0.1:0"])
    assert_one_line_failure(result, mentions)


def test_database_from_a_newer_version(tmp_path: Path) -> None:
    import sqlite3

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with sqlite3.connect(data_dir / "mock-kms.sqlite3") as connection:
        connection.execute("PRAGMA user_version = 99")
    result = run_serve_expecting_failure(["--data-dir", str(data_dir), "--bind", "127.0.0.1:0"])
    assert_one_line_failure(result, "newer mock-kms")


def test_port_in_use(tmp_path: Path) -> None:
    """Says what is wrong and exits at once (not after gunicorn's retries)."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        started = time.monotonic()
        result = run_serve_expecting_failure(
            ["--data-dir", str(tmp_path / "data"), "--bind", f"127.0.0.1:{port}"]
        )
        elapsed = time.monotonic() - started
    assert result.returncode != 0
    assert "Address already in use" in result.stderr
    assert str(port) in result.stderr
    assert_one_line_failure(result, "cannot listen")
    assert elapsed < 15


def test_unknown_option_is_a_usage_error(tmp_path: Path) -> None:
    result = run_serve_expecting_failure(["--data-dir", str(tmp_path), "--colour", "blue"])
    assert result.returncode == EXIT_CONFIGURATION
    assert "unrecognized arguments: --colour" in result.stderr


# --- good configuration ----------------------------------------------------------------------
def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as stream:
        return subprocess.Popen(
            serve_command(*args), stdout=stream, stderr=subprocess.STDOUT, env=clean_env(env)
        )


def _stop(process: subprocess.Popen[bytes]) -> int:
    """SIGTERM by PID; returns the exit status."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            return process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
            raise
    return int(process.returncode)


def _healthy(port: int) -> bool:
    try:
        return raw_request(port, b"", method="GET", path="/healthz", timeout=2).status == 200
    except OSError:
        return False


@pytest.fixture()
def env_configured(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, Path]]:
    """A server configured by MOCK_KMS_* only, except --region on the command line."""
    port = free_port()
    data_dir = tmp_path / "env-data"
    env = {
        "MOCK_KMS_BIND": f"127.0.0.1:{port}",
        "MOCK_KMS_DATA_DIR": str(data_dir),
        "MOCK_KMS_WORKERS": "3",
        "MOCK_KMS_REGION": "eu-central-1",
        "MOCK_KMS_ACCOUNT_ID": "222233334444",
        "MOCK_KMS_NO_S3": "1",
    }
    process = _spawn(["--region", "ap-south-1"], env, tmp_path / "env-server.log")
    try:
        assert wait_until(lambda: _healthy(port) or process.poll() is not None, timeout=30)
        assert process.poll() is None, (tmp_path / "env-server.log").read_text()
        yield process, port, data_dir
    finally:
        _stop(process)


def test_environment_and_options(env_configured: tuple[subprocess.Popen[bytes], int, Path]) -> None:
    """MOCK_KMS_BIND/DATA_DIR/WORKERS/ACCOUNT_ID are read; --region beats MOCK_KMS_REGION."""
    process, port, data_dir = env_configured
    response = raw_request(port, {}, target="CreateKey")  # no Authorization: the defaults
    assert response.status == 200
    metadata = response.json()["KeyMetadata"]
    assert metadata["Arn"] == f"arn:aws:kms:ap-south-1:222233334444:key/{metadata['KeyId']}"
    assert (data_dir / "mock-kms.sqlite3").is_file()
    assert wait_until(lambda: len(child_pids(process.pid)) == 3, timeout=10)
    # MOCK_KMS_NO_S3: nothing but the KMS answers, so any other request is a KMS JSON error.
    for method, path in (("GET", "/nothing"), ("GET", "/"), ("PUT", "/bucket")):
        stray = raw_request(port, b"", method=method, path=path, headers={"Content-Type": ""})
        assert 400 <= stray.status < 500
        assert stray.header("Content-Type") == "application/x-amz-json-1.1"
        assert stray.json()["__type"] == stray.header("X-Amzn-ErrorType")
    assert _stop(process) == 0


def test_healthz(kms_server: RunningServer) -> None:
    health = checked_healthz(kms_server)
    assert isinstance(health["backends"]["software"]["materials"], int)


def test_root_key_file_is_created_0600(kms_server: RunningServer) -> None:
    root_key = kms_server.data_dir / "root.key"
    mode = stat.S_IMODE(root_key.stat().st_mode)
    assert mode == 0o600, oct(mode)
    assert len(base64.b64decode(root_key.read_text().strip(), validate=True)) == 32


def test_root_key_is_not_in_the_log(kms_server: RunningServer) -> None:
    root_key = (kms_server.data_dir / "root.key").read_text().strip()
    assert root_key not in kms_server.log()


def test_root_key_from_the_environment_and_a_changed_root_key(tmp_path: Path) -> None:
    """MOCK_KMS_ROOT_KEY replaces the file. Restarting with a different root key is refused at
    startup in one line (with or without the S3 side), never keys that fail at run time."""
    data_dir = tmp_path / "data"
    key = secrets.token_bytes(32)
    plaintext = b"sealed under the first root key"
    with running_server(data_dir, workers=1, env={"MOCK_KMS_ROOT_KEY": key.hex()}) as server:
        assert not (data_dir / "root.key").exists()
        client = kms_client(server.endpoint)
        account = client._request_signer._credentials.access_key
        key_id = client.create_key()["KeyMetadata"]["KeyId"]
        blob = client.encrypt(KeyId=key_id, Plaintext=plaintext)["CiphertextBlob"]

    other = base64.b64encode(secrets.token_bytes(32)).decode()
    for extra in ({}, {"MOCK_KMS_NO_S3": "1"}):
        result = run_serve_expecting_failure(
            ["--data-dir", str(data_dir), "--bind", "127.0.0.1:0"],
            env={"MOCK_KMS_ROOT_KEY": other, **extra},
        )
        assert_one_line_failure(result, "root key")
        assert other not in result.stderr
    assert not (data_dir / "root.key").exists()

    # The right key still opens everything.
    with running_server(data_dir, workers=1, env={"MOCK_KMS_ROOT_KEY": key.hex()}) as server:
        client = kms_client(server.endpoint, access_key_id=account)
        assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext

    # The same key bytes, given as base64 this time, open everything again.
    restored = base64.b64encode(key).decode()
    with running_server(data_dir, workers=1, env={"MOCK_KMS_ROOT_KEY": restored}) as server:
        client = kms_client(server.endpoint, access_key_id=account)
        assert client.decrypt(CiphertextBlob=blob)["Plaintext"] == plaintext


def test_sigterm_stops_master_and_workers(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", workers=2) as server:
        assert wait_until(lambda: len(child_pids(server.pid)) == 2, timeout=10)
        workers = child_pids(server.pid)
        Caller(server.port).create_key()
        server.stop()
        assert server.process.returncode == 0
        for pid in workers:
            assert wait_until(lambda pid=pid: not _alive(pid), timeout=10)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return status.exists() and "State:\tZ" not in status.read_text()


@pytest.mark.hsm
@pytest.mark.parametrize(
    ("case", "mentions"),
    [("missing-module", "PKCS11_MODULE"), ("wrong-pin", "PIN"), ("unknown-label", "token")],
)
def test_pkcs11_misconfiguration_fails_fast_in_one_line(
    tmp_path: Path, case: str, mentions: str
) -> None:
    """A wrong module, PIN or token label is found before gunicorn forks (the check runs in a
    child process, so the master never loads the PKCS#11 module)."""
    from tests.conftest import backend_env

    env = backend_env("pkcs11", tmp_path / "hsm")
    if case == "missing-module":
        env["PKCS11_MODULE"] = str(tmp_path / "no-such-module.so")
    elif case == "wrong-pin":
        pin_file = tmp_path / "wrong.pin"
        pin_file.write_text("000000\n")
        env["PKCS11_PIN_FILE"] = str(pin_file)
    else:
        env["PKCS11_TOKEN_LABEL"] = "no-such-token"
    result = run_serve_expecting_failure(
        ["--data-dir", str(tmp_path / "data"), "--bind", "127.0.0.1:0"], env=env
    )
    assert_one_line_failure(result, mentions)
