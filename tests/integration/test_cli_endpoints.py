"""Every ``mock-kms`` subcommand that talks to a running server finds it the same way
(--endpoint-url, MOCK_KMS_ENDPOINT, AWS_ENDPOINT_URL_KMS / AWS_ENDPOINT_URL, MOCK_KMS_BIND),
run for real against a real server; ``mock-kms s3`` takes ``s3://BUCKET/KEY`` and keeps
botocore quiet; negative durations get a clear error; local-kms's variables configure
``serve``; ``mock-kms healthcheck`` follows the configured port and scheme."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import boto3
import pytest

from tests.support.admin import DEV, admin
from tests.support.s3 import kms_client, s3_client
from tests.support.server import RunningServer, free_port, running_server
from tests.support.wire import child_pids, wait_until

#: Nothing listens here (a port just found free and let go).
DEAD = f"http://127.0.0.1:{free_port()}"
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def mock_kms(
    *args: str, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``mock-kms ARGS`` with no MOCK_KMS_*/AWS_* variables but ``env``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_KMS_", "AWS_", "KMS_"))}
    return subprocess.run(
        [sys.executable, "-m", "kms_service.serving.cli", *args],
        capture_output=True,
        text=True,
        env={**clean, **(env or {})},
        cwd=cwd,
        timeout=120,
        check=False,
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(tmp_path_factory.mktemp("endpoints") / "data", env=DEV) as running:
        yield running


def sources(server: RunningServer) -> dict[str, str]:
    return {
        "MOCK_KMS_ENDPOINT": server.endpoint,
        "AWS_ENDPOINT_URL_KMS": server.endpoint,
        "AWS_ENDPOINT_URL": server.endpoint,
        "MOCK_KMS_BIND": f"0.0.0.0:{server.port}",
    }


@pytest.mark.parametrize(
    "chosen", ["MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL_KMS", "AWS_ENDPOINT_URL", "MOCK_KMS_BIND"]
)
def test_each_source_finds_the_server_and_outranks_the_later_ones(
    server: RunningServer, chosen: str
) -> None:
    names = list(sources(server))
    later = names[names.index(chosen) + 1 :]
    env = {chosen: sources(server)[chosen], **{name: DEAD for name in later}}
    if "MOCK_KMS_BIND" in later:
        env["MOCK_KMS_BIND"] = DEAD.removeprefix("http://")
    result = mock_kms("clock", "show", env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["offset_seconds"] == 0


@pytest.mark.parametrize("option", ["--endpoint-url", "--endpoint"])
def test_the_option_outranks_every_variable(server: RunningServer, option: str) -> None:
    env = {name: DEAD for name in ("MOCK_KMS_ENDPOINT", "AWS_ENDPOINT_URL")}
    result = mock_kms("faults", "show", option, server.endpoint, env=env)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) is not None


def test_an_unreachable_server_is_one_line_naming_the_url() -> None:
    result = mock_kms("reset", env={"MOCK_KMS_ENDPOINT": DEAD})
    assert result.returncode == 2
    assert result.stderr.startswith(f"mock-kms: error: cannot reach mock-kms at {DEAD}")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_negative_duration_gets_a_clear_error(server: RunningServer) -> None:
    for duration in ("-5d", "-3"):
        result = mock_kms("clock", "advance", duration, "--endpoint-url", server.endpoint)
        assert result.returncode == 2, result.stderr
        assert "the clock only moves forward" in result.stderr
        assert "required" not in result.stderr
    assert admin(server, "GET", "/clock")[1]["offset_seconds"] == 0


def test_s3_put_and_get_with_s3_urls_on_the_found_server(
    server: RunningServer, tmp_path: Path
) -> None:
    """No --endpoint-url, no --kms-endpoint-url: both from MOCK_KMS_BIND, as every command."""
    s3_client(server).create_bucket(Bucket="cli-urls")
    key_id = kms_client(server).create_key()["KeyMetadata"]["KeyId"]
    kms_client(server).create_alias(AliasName="alias/app", TargetKeyId=key_id)
    source = tmp_path / "report.csv"
    source.write_bytes(os.urandom(70_000))
    env = {**CREDENTIALS, "MOCK_KMS_BIND": f"127.0.0.1:{server.port}"}

    put = mock_kms("s3", "put", str(source), "s3://cli-urls/in/", "--cse-kms", "alias/app", env=env)
    assert put.returncode == 0, put.stderr
    assert put.stderr == ""  # botocore's "Found credentials in environment variables." is INFO
    stored = s3_client(server).get_object(Bucket="cli-urls", Key="in/report.csv")
    assert stored["Metadata"]["x-amz-c"]  # the S3 Encryption Client's envelope
    assert stored["Body"].read() != source.read_bytes()

    out_dir = tmp_path / "out"
    out_dir.mkdir()
    got = mock_kms(
        "s3", "get", "s3://cli-urls/in/report.csv", str(out_dir), "--cse-kms", "alias/app", env=env
    )
    assert got.returncode == 0, got.stderr
    assert got.stderr == ""
    assert (out_dir / "report.csv").read_bytes() == source.read_bytes()

    old_form = mock_kms(
        "s3", "get", "cli-urls", "in/report.csv", str(tmp_path / "old-form"), "--cse-kms",
        key_id, "--endpoint-url", server.endpoint, env=CREDENTIALS,
    )  # fmt: skip
    assert old_form.returncode == 0, old_form.stderr
    assert (tmp_path / "old-form").read_bytes() == source.read_bytes()

    wrong_way = mock_kms("s3", "put", "s3://cli-urls/x", str(source), "--cse-kms", "k", env=env)
    assert wrong_way.returncode == 1
    assert "put FILE s3://BUCKET/KEY" in wrong_way.stderr


def test_local_kms_variables_configure_serve(tmp_path: Path) -> None:
    """KMS_ACCOUNT_ID, KMS_REGION, KMS_SEED_PATH and KMS_DATA_PATH, as local-kms reads them."""
    seed = tmp_path / "seed.yaml"
    key_id = "bc436485-5092-42b8-92a3-0aa8b93536dc"
    seed.write_text(
        "Keys:\n  Symmetric:\n    Aes:\n"
        f"      - Metadata:\n          KeyId: {key_id}\n"
        "        BackingKeys:\n"
        "          - 5cdaead27fe7da2de47945d73cd6d79e36494e73802f3cd3869f1d2cb0b5d7a9\n"
        f"Aliases:\n  - AliasName: alias/from-local-kms\n    TargetKeyId: {key_id}\n"
    )
    port = free_port()
    env = {
        "KMS_ACCOUNT_ID": "444455556666",
        "KMS_REGION": "eu-west-2",
        "KMS_SEED_PATH": str(seed),
        "KMS_DATA_PATH": str(tmp_path / "local-kms-data"),
        "MOCK_KMS_BIND": f"127.0.0.1:{port}",
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("MOCK_KMS_", "KMS_"))}
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "kms_service.serving.cli", "serve"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**clean, **env},
            cwd=tmp_path,
        )
    server = RunningServer(process, port, tmp_path / "local-kms-data", log_path, env)
    try:
        assert wait_until(lambda: _healthy(server), timeout=30), server.log()
        kms = boto3.client(
            "kms",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="eu-west-2",
            aws_access_key_id="test",  # not 12 digits: the default account
            aws_secret_access_key="test",
        )
        metadata = kms.describe_key(KeyId="alias/from-local-kms")["KeyMetadata"]
        assert metadata["Arn"] == f"arn:aws:kms:eu-west-2:444455556666:key/{key_id}"
        assert (tmp_path / "local-kms-data" / "mock-kms.sqlite3").is_file()
        assert not (tmp_path / ".mock-kms").exists()
    finally:
        server.stop()


def _healthy(server: RunningServer) -> bool:
    if server.process.poll() is not None:
        raise AssertionError(server.log())
    try:
        return server.health().get("status") == "ok"
    except OSError:
        return False


def _dockerfile_healthcheck() -> list[str]:
    """The HEALTHCHECK command of deploy/Dockerfile, as the image runs it."""
    text = (Path(__file__).resolve().parents[2] / "deploy" / "Dockerfile").read_text()
    (line,) = [line for line in text.splitlines() if line.strip().startswith('CMD ["mock-kms"')]
    command: list[str] = json.loads(line.strip().removeprefix("CMD "))
    assert command[0] == "mock-kms"
    return [sys.executable, "-m", "kms_service.serving.cli", *command[1:]]


@pytest.mark.parametrize("tls", [False, True], ids=["http", "https"])
def test_docker_healthcheck_follows_port_and_scheme(tmp_path: Path, tls: bool) -> None:
    extra = ["--tls"] if tls else []
    with running_server(tmp_path / "data", extra_args=extra) as server:
        assert wait_until(lambda: len(child_pids(server.pid)) == 2)
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("MOCK_KMS_")},
            # As the image sets it, with another port; --tls as MOCK_KMS_TLS=1 would give.
            "MOCK_KMS_BIND": f"0.0.0.0:{server.port}",
            **({"MOCK_KMS_TLS": "1"} if tls else {}),
        }
        check = subprocess.run(
            _dockerfile_healthcheck(), capture_output=True, text=True, env=env, timeout=30
        )
        assert check.returncode == 0, check.stderr
        scheme = "https" if tls else "http"
        assert check.stdout.strip() == f"{scheme}://127.0.0.1:{server.port}/healthz: ok"
    # Stopped: unhealthy, in one line.
    down = subprocess.run(
        _dockerfile_healthcheck(), capture_output=True, text=True, env=env, timeout=30
    )
    assert down.returncode == 1
    assert len(down.stderr.strip().splitlines()) == 1 and str(server.port) in down.stderr
