"""One set of gunicorn options for both ways to start the server: ``mock-kms serve`` and
``gunicorn -c deploy/gunicorn.conf.py`` run for real, side by side, and show the same
listeners, limits and ``Listening at:`` line; bad configuration exits 2 on both."""

from __future__ import annotations

import re
import runpy
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kms_service.serving.gunicorn_options import gunicorn_options
from kms_service.serving.server import MockKmsServer
from kms_service.settings import Settings
from tests.integration.test_deploy import DEPLOY, start_gunicorn
from tests.support.server import RunningServer, running_server
from tests.support.wire import child_pids, clean_env, raw_request, wait_until

WORKERS = 2


@pytest.fixture(params=["serve", "gunicorn-conf"])
def either_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """The same settings served by ``mock-kms serve`` and by ``deploy/gunicorn.conf.py``."""
    if request.param == "serve":
        with running_server(tmp_path / "data", workers=WORKERS) as server:
            yield server
    else:
        server = start_gunicorn(tmp_path, {"MOCK_KMS_WORKERS": str(WORKERS)})
        try:
            yield server
        finally:
            server.stop()


def listening_sockets(port: int) -> int:
    """How many sockets listen on 127.0.0.1:``port`` (state 0A in /proc/net/tcp)."""
    wanted = f"0100007F:{port:04X}"
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == wanted and fields[3] == "0A":
            count += 1
    return count


def test_the_log_names_the_address(either_server: RunningServer) -> None:
    line = f"Listening at: http://127.0.0.1:{either_server.port} ("
    assert line in either_server.log()
    assert "Listening at:  (" not in either_server.log()


def test_each_worker_listens_on_its_own_sockets(either_server: RunningServer) -> None:
    """reuse_port and the per-worker listeners: the kernel spreads new connections over
    every worker, on both paths."""
    assert wait_until(lambda: len(child_pids(either_server.pid)) == WORKERS)
    # Workers add their own listener after booting: wait for all of them.
    assert wait_until(lambda: listening_sockets(either_server.port) >= 2 * WORKERS), (
        listening_sockets(either_server.port)
    )


def test_long_request_lines_are_accepted(either_server: RunningServer) -> None:
    """limit_request_line 8190 on both paths (gunicorn's default of 4094 would answer 400)."""
    path = "/no-such-bucket?prefix=" + "p" * 6000  # a 6 kB request line
    response = raw_request(either_server.port, b"", method="GET", path=path)
    assert response.status == 404, response.body[:200]
    assert b"NoSuchBucket" in response.body


def test_https_address_in_the_log(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", extra_args=["--tls"]) as server:
        assert f"Listening at: https://127.0.0.1:{server.port} (" in server.log()


def _setting_values(options: dict[str, Any]) -> dict[str, Any]:
    """Comparable values: hooks and classes by their qualified names."""
    return {
        name: getattr(value, "__qualname__", value) if callable(value) else value
        for name, value in options.items()
    }


def test_serve_and_the_deploy_file_set_the_same_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = {
        "MOCK_KMS_BIND": "127.0.0.1:18080",
        "MOCK_KMS_DATA_DIR": str(tmp_path / "data"),
        "MOCK_KMS_WORKERS": "3",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    deploy = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    settings = Settings.from_sources().validate()
    served = MockKmsServer(settings).cfg
    expected = _setting_values(gunicorn_options(settings, preflight=True))
    deployed = _setting_values({k: v for k, v in deploy.items() if k in expected})
    assert deployed == expected
    # serve checks before gunicorn starts, so its only difference is the on_starting hook.
    for name, value in expected.items():
        if name in ("on_starting", "wsgi_app"):
            continue
        actual = served.settings[name].get()
        actual = getattr(actual, "__qualname__", actual) if callable(actual) else actual
        assert actual == value, name
    assert {"reuse_port", "limit_request_line", "child_exit", "post_worker_init"} <= set(expected)


@pytest.mark.parametrize(
    ("env", "mentions"),
    [
        ({"MOCK_KMS_REGION": "Mars"}, "MOCK_KMS_REGION"),
        ({"MOCK_KMS_WORKERS": "many"}, "workers"),
        ({"KMS_ACCOUNT_ID": "12"}, "KMS_ACCOUNT_ID"),
        ({"MOCK_KMS_BACKEND": "pkcs11"}, "PKCS11_MODULE"),
    ],
    ids=["region", "workers", "local-kms-account", "pkcs11-unconfigured"],
)
def test_gunicorn_conf_exits_2_with_one_line(
    tmp_path: Path, env: dict[str, str], mentions: str
) -> None:
    """The systemd unit's RestartPreventExitStatus=2 relies on it."""
    full_env = clean_env(
        {"MOCK_KMS_BIND": "127.0.0.1:0", "MOCK_KMS_DATA_DIR": str(tmp_path), **env}
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    result = subprocess.run(
        [str(gunicorn), "-c", str(DEPLOY / "gunicorn.conf.py")],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=tmp_path,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mock-kms: error: "), result.stderr
    assert mentions in lines[0]


def test_gunicorn_conf_port_in_use_exits_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = clean_env({"MOCK_KMS_BIND": f"127.0.0.1:{port}", "MOCK_KMS_DATA_DIR": str(tmp_path)})
        started = time.monotonic()
        result = subprocess.run(
            [str(Path(sys.executable).parent / "gunicorn"), "-c", str(DEPLOY / "gunicorn.conf.py")],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=60,
            check=False,
        )
    assert result.returncode == 2, result.stderr
    assert re.search(rf"mock-kms: error: cannot listen on --bind 127.0.0.1:{port}", result.stderr)
    assert time.monotonic() - started < 30
