"""The Makefile and the systemd install steps, run for real where that is safe: ``make run``
installs only what serving needs and ``make test``/``make lint`` the rest (separate stamps,
checked with ``make -n``); ``make run-hsm`` execs the server (run on a real SoftHSM token);
the unit's install steps, run under a scratch root, create ``/etc/mock-kms`` before using it."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server import RunningServer, free_port
from tests.support.wire import child_pids, wait_until

ROOT = Path(__file__).resolve().parents[2]


def make_dry_run(target: str, venv: Path) -> str:
    result = subprocess.run(
        ["make", "-n", "-C", str(ROOT), target, f"VENV={venv}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture
def make_available() -> None:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")


@pytest.mark.usefixtures("make_available")
def test_make_run_on_a_fresh_machine_installs_only_what_serving_needs(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run = make_dry_run("run", venv)
    assert f"-m venv {venv}" in run
    assert re.search(r"pip install --quiet -e \.$", run, re.MULTILINE), run
    assert "[dev]" not in run
    assert f"{venv}/bin/mock-kms serve" in run
    for target in ("test", "lint"):
        output = make_dry_run(target, venv)
        assert f"-m venv {venv}" in output
        assert "pip install --quiet -e '.[dev]'" in output


@pytest.mark.usefixtures("make_available")
def test_make_test_after_make_run_still_installs_the_test_tooling(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".run-stamp").touch()  # `make run` has run
    assert "pip install" not in make_dry_run("run", venv)
    assert "pip install --quiet -e '.[dev]'" in make_dry_run("test", venv)
    (venv / ".dev-stamp").touch()  # `make test` has run
    assert "pip install" not in make_dry_run("test", venv)
    assert "pip install" not in make_dry_run("lint", venv)


@pytest.mark.usefixtures("make_available")
def test_make_run_hsm_execs_the_server(tmp_path: Path) -> None:
    """The server replaces the recipe's shell: make's child is the gunicorn master itself,
    so stopping make's process group stops the server, with no shell left between them."""
    from tests.conftest import require_in_ci
    from tests.support.softhsm import MISSING_REASON, softhsm_available

    if not softhsm_available():
        require_in_ci(MISSING_REASON)
    venv = Path(sys.executable).parent.parent
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    stamp = tmp_path / "run-stamp"
    stamp.touch()  # installed already: the project's environment is the one under test
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_KMS_", "PKCS11_"))}
    env.update(MOCK_KMS_BIND=f"127.0.0.1:{port}", PYTHONPATH=str(ROOT))
    log_path = tmp_path / "make.log"
    with open(log_path, "wb") as log:
        make = subprocess.Popen(
            ["make", "-f", str(ROOT / "Makefile"), "run-hsm", f"VENV={venv}", f"RUN_STAMP={stamp}"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp_path,
            start_new_session=True,
        )
    server = RunningServer(make, port, tmp_path / ".mock-kms", log_path)
    try:
        assert wait_until(lambda: _healthy(server), timeout=60), server.log()
        (child,) = child_pids(make.pid)
        command = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        assert any(part.endswith(b"mock-kms") for part in command), command
        assert b"serve" in command and b"pkcs11" in command
        assert server.health()["default_backend"] == "pkcs11"
        os.killpg(make.pid, signal.SIGTERM)
        make.wait(timeout=30)
        assert wait_until(lambda: not Path(f"/proc/{child}").exists(), timeout=20)
    finally:
        if make.poll() is None:
            os.killpg(make.pid, signal.SIGKILL)
            make.wait(timeout=10)


def _healthy(server: RunningServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(server.log())
    try:
        return server.health().get("status") == "ok"
    except OSError:
        return False


def install_steps() -> list[str]:
    """The install commands in the comment at the top of deploy/mock-kms.service."""
    lines = (ROOT / "deploy" / "mock-kms.service").read_text().splitlines()
    steps = []
    for line in lines:
        if not line.startswith("#   "):
            continue
        steps.extend(part.strip() for part in line[4:].split("&&"))
    return steps


def test_systemd_install_steps_create_etc_mock_kms_first(tmp_path: Path) -> None:
    """Run the file-system steps under a scratch root (no useradd, pip or systemctl; no
    ownership, which needs root): every file lands where the unit reads it."""
    steps = install_steps()
    creating = [i for i, s in enumerate(steps) if re.match(r"install -d .*/etc/mock-kms$", s)]
    using = [i for i, s in enumerate(steps) if "/etc/mock-kms/" in s]
    assert creating and using and creating[0] < min(using), steps
    scratch = tmp_path / "root"
    (scratch / "etc" / "systemd" / "system").mkdir(parents=True)
    for step in steps:
        words = shlex.split(step)
        if words[0] != "install":
            continue
        words = [
            w
            for i, w in enumerate(words)
            if w not in ("-o", "-g") and words[i - 1] not in ("-o", "-g")
        ]
        words = [str(scratch) + w if w.startswith("/etc/") else w for w in words]
        subprocess.run(words, cwd=ROOT, check=True, timeout=30)
    unit = (ROOT / "deploy" / "mock-kms.service").read_text()
    (conf_path,) = re.findall(r"gunicorn -c (\S+)", unit)
    assert (scratch / conf_path.lstrip("/")).read_text() == (
        ROOT / "deploy" / "gunicorn.conf.py"
    ).read_text()
    assert (scratch / "etc/systemd/system/mock-kms.service").read_text() == unit
    assert "EnvironmentFile=-/etc/mock-kms/mock-kms.env" in unit
