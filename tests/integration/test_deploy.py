"""deploy/: gunicorn.conf.py serves the real app (run for real), and the Dockerfile, compose
file and systemd unit have what they promise (Docker does not run here: they are parsed)."""

from __future__ import annotations

import configparser
import json
import multiprocessing
import os
import re
import runpy
import shutil
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.support.admin import metric, metrics_text
from tests.support.kms_ops import account_client
from tests.support.server import RunningServer, free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
KEY = "6f1c2b1e-8d7a-4f4e-9a51-0c2f0b1d2e3f"


def start_gunicorn(tmp_path: Path, env: dict[str, str]) -> RunningServer:
    """``gunicorn -c deploy/gunicorn.conf.py`` from the project's virtual environment."""
    port = free_port()
    data_dir = tmp_path / "data"
    log_path = tmp_path / "gunicorn.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    full_env.update(MOCK_KMS_BIND=f"127.0.0.1:{port}", MOCK_KMS_DATA_DIR=str(data_dir), **env)
    gunicorn = Path(sys.executable).parent / "gunicorn"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [str(gunicorn), "-c", str(DEPLOY / "gunicorn.conf.py")],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=full_env,
            cwd=tmp_path,
        )
    server = RunningServer(process, port, data_dir, log_path, env)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"gunicorn exited with {process.returncode}:\n{server.log()}")
        try:
            if server.health().get("status") == "ok":
                return server
        except (OSError, urllib.error.URLError):
            pass
        time.sleep(0.1)
    server.stop()
    raise RuntimeError(f"gunicorn did not become healthy:\n{server.log()}")


def test_gunicorn_conf_serves_the_real_app(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text(f"keys:\n  - id: {KEY}\n    aliases: [alias/deployed]\n")
    env = {"MOCK_KMS_WORKERS": "2", "MOCK_KMS_SEED": str(seed), "MOCK_KMS_DEV_ENDPOINTS": "1"}
    server = start_gunicorn(tmp_path, env)
    try:
        kms = account_client(server.endpoint, "111122223333")
        blob = kms.encrypt(KeyId="alias/deployed", Plaintext=b"deployed")["CiphertextBlob"]
        for _ in range(10):  # both workers answer
            assert kms.decrypt(CiphertextBlob=blob)["Plaintext"] == b"deployed"
        created = kms.create_key()["KeyMetadata"]["KeyId"]
        assert kms.describe_key(KeyId=created)["KeyMetadata"]["KeyState"] == "Enabled"
        text = metrics_text(server)
        assert metric(text, "mock_kms_requests_total", operation="Decrypt", error_code="none") == 10
        with urllib.request.urlopen(server.endpoint + "/_mock-kms/clock", timeout=5) as answer:
            assert json.loads(answer.read())["offset_seconds"] == 0
        # The second worker may still be booting (its line not yet written) even though the
        # first already answers: wait for both lines, bounded.
        deadline = time.monotonic() + 20
        while len(re.findall(r"Booting worker with pid", server.log())) < 2:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        log = server.log()
        assert len(re.findall(r"Booting worker with pid", log)) == 2
        assert "created key" in log  # the seed ran in the master, before the workers
        assert log.index("created key") < log.index("Booting worker")
    finally:
        server.stop()
    assert server.process.returncode == 0


def test_gunicorn_conf_stops_on_bad_configuration_with_one_line(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("keys:\n  - id: not-a-key\n")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")}
    env.update(
        MOCK_KMS_BIND=f"127.0.0.1:{port}",
        MOCK_KMS_DATA_DIR=str(tmp_path / "data"),
        MOCK_KMS_SEED=str(seed),
    )
    gunicorn = Path(sys.executable).parent / "gunicorn"
    result = subprocess.run(
        [str(gunicorn), "-c", str(DEPLOY / "gunicorn.conf.py")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert f"{seed}:2: keys[0].id" in result.stderr
    assert "Traceback" not in result.stderr


def test_worker_count_follows_the_cpu_count(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOCK_KMS_WORKERS", raising=False)
    config = runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))
    expected = max(2, min(2 * multiprocessing.cpu_count() + 1, 16))
    assert config["workers"] == expected
    assert config["wsgi_app"] == "kms_service.serving.wsgi:loaded_application()"
    assert config["preload_app"] is False
    assert callable(config["on_starting"]) and callable(config["child_exit"])
    monkeypatch.setenv("MOCK_KMS_WORKERS", "3")
    assert runpy.run_path(str(DEPLOY / "gunicorn.conf.py"))["workers"] == 3


def _instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", path.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            result.append((word.upper(), rest.strip()))
    return result


def test_dockerfile_essentials() -> None:
    instructions = _instructions(DEPLOY / "Dockerfile")
    stages = [args for word, args in instructions if word == "FROM"]
    assert stages and all(re.match(r"python:3\.1\d-slim\b", s) for s in stages)
    runtime = instructions[[i for i, (w, _) in enumerate(instructions) if w == "FROM"][-1] :]
    runs = " ".join(args for word, args in runtime if word == "RUN")
    assert "softhsm2" in runs and "useradd" in runs
    users = [args for word, args in runtime if word == "USER"]
    assert users and users[-1] not in ("root", "0")
    assert any(word == "VOLUME" and "/data" in args for word, args in runtime)
    env = " ".join(args for word, args in runtime if word == "ENV")
    assert "MOCK_KMS_DATA_DIR=/data" in env and "MOCK_KMS_BIND=0.0.0.0:8080" in env
    (healthcheck,) = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert healthcheck.endswith('CMD ["mock-kms", "healthcheck"]')
    (command,) = [args for word, args in runtime if word == "CMD"]
    assert json.loads(command) == ["gunicorn", "-c", "/app/deploy/gunicorn.conf.py"]
    for word, args in instructions:  # everything copied from the build context exists
        if word == "COPY" and not args.startswith("--from"):
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    # `pip install .` in the build stage installs what pyproject.toml's package list finds in
    # the copied sources: a package left out of the COPY lines is missing from the image.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = project["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in patterns}
    instructions = _instructions(DEPLOY / "Dockerfile")
    build = instructions[: [i for i, (w, _) in enumerate(instructions) if w == "FROM"][1]]
    copied = {args.split()[0] for word, args in build if word == "COPY"}
    assert packages <= copied, sorted(packages - copied)


def test_compose_has_a_software_and_a_softhsm_service() -> None:
    compose = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    services = compose["services"]
    assert set(services) == {"kms", "kms-hsm"}
    build = services["kms"]["build"]
    assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    assert services["kms"]["ports"] == ["8080:8080"]
    hsm_command = " ".join(services["kms-hsm"]["command"])
    assert "mock-kms softhsm-init --data-dir /data" in hsm_command
    assert "gunicorn -c /app/deploy/gunicorn.conf.py" in hsm_command
    for service in services.values():
        volume = service["volumes"][0].split(":")
        assert volume[1] == "/data" and volume[0] in compose["volumes"]
    if shutil.which("docker-compose"):
        result = subprocess.run(
            ["docker-compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "-q"],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, result.stderr


def test_systemd_unit_essentials() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(DEPLOY / "mock-kms.service")
    service = unit["Service"]
    assert service["ExecStart"].endswith("gunicorn -c /etc/mock-kms/gunicorn.conf.py")
    assert service["User"] == "mock-kms" and service["StateDirectory"] == "mock-kms"
    assert service["Restart"] == "on-failure" and service["RestartPreventExitStatus"] == "2"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
    analyze = shutil.which("systemd-analyze")
    if analyze:
        result = subprocess.run(
            [analyze, "verify", str(DEPLOY / "mock-kms.service")],
            capture_output=True,
            text=True,
            check=False,
        )
        problems = [
            line
            for line in (result.stdout + result.stderr).splitlines()
            if line.strip() and "is not executable" not in line and "No such file" not in line
        ]
        assert problems == []


def test_wsgi_application_is_lazy() -> None:
    # Importing the entry point must not build anything (gunicorn imports it in each worker).
    code = (
        "import kms_service.serving.wsgi as w, sys; "
        "assert w.application._app is None; "
        "assert 'kms_service.serving.app' not in sys.modules; print('ok')"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr
